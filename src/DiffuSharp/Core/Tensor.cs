// The tensor: float32 storage, an N-d shape and strides over it (so views share storage), and the autograd
// fields. No maths here: ops live in Autograd/Ops.*.cs and the public one-liners in Tensor.Math.cs.
using System.Text;
using DiffuSharp.Autograd;

namespace DiffuSharp;

/// <summary>An N-dimensional float32 tensor: storage, shape and strides (views share storage) and the autograd fields
/// (Grad, RequiresGrad). Operations record a graph for <see cref="Backward"/> while
/// <see cref="GradMode.IsEnabled"/>.</summary>
public sealed partial class Tensor
{
    float[] _storage;
    internal int Offset;
    readonly int[] _shape;
    readonly int[] _strides;
    Tensor? _grad;

    /// <summary>Set when the storage came from a <see cref="TensorScope"/> (shared by every view of it).</summary>
    internal StorageLease? Lease { get; private set; }

    /// <summary>The backing array; throws once the storage went back to the pool. While the elements are held in a
    /// kernel's packed layout (<see cref="SetPackedLayout"/>), the first read puts them back in this tensor's layout.</summary>
    internal float[] Storage
    {
        get
        {
            if (Lease is { IsReleased: true } lease) throw lease.UseAfterRelease($"Tensor{ShapeUtil.Format(_shape)}");
            if (_packed is not null) RestoreLayout();
            return _storage;
        }
        set
        {
            _storage = value;
            Lease = null;
        }
    }

    /// <summary>Set while the storage holds the elements in a kernel's packed layout instead of the one this tensor's
    /// strides describe (see <see cref="SetPackedLayout"/>).</summary>
    volatile PackedLayout? _packed;

    /// <summary>How to restore a packed storage, and the gate that keeps a restore and a packed read apart.</summary>
    sealed class PackedLayout(Action<float[]> unpack)
    {
        public readonly Action<float[]> Unpack = unpack;
        public readonly Lock Gate = new();
    }

    /// <summary>Marks the elements as rewritten into a kernel's packed layout (a Linear weight packed for inference):
    /// until then only <see cref="EnterPackedLayout"/> reads them that way, and any other read of the storage first runs
    /// <paramref name="unpack"/> on the storage array, which must restore this tensor's own layout in place. Only for a tensor that owns its
    /// storage, so no view or shared buffer can see the packed elements.</summary>
    internal void SetPackedLayout(Action<float[]> unpack)
    {
        if (!OwnsStorage) throw new InvalidOperationException($"only a tensor that owns its storage can hold a packed layout; this {ShapeUtil.Format(_shape)} one is a view or shares its buffer");
        if (_packed is not null) throw new InvalidOperationException("the storage is in a packed layout already");
        _packed = new PackedLayout(unpack);
    }

    /// <summary>True while the elements are in a packed layout (<see cref="SetPackedLayout"/>).</summary>
    internal bool HasPackedLayout => _packed is not null;

    /// <summary>The storage, held in the packed layout (no restore can start) until <see cref="ExitPackedLayout"/>; null,
    /// and nothing held, when it is not in a packed layout (any more).</summary>
    internal float[]? EnterPackedLayout()
    {
        var packed = _packed;
        if (packed is null) return null;
        packed.Gate.Enter();
        if (_packed == packed) return _storage;
        packed.Gate.Exit();
        return null;
    }

    /// <summary>Ends an <see cref="EnterPackedLayout"/> that returned the storage.</summary>
    internal void ExitPackedLayout() => _packed!.Gate.Exit();

    void RestoreLayout()
    {
        var packed = _packed;
        if (packed is null) return;
        lock (packed.Gate)
        {
            if (_packed != packed) return;
            packed.Unpack(_storage);
            _packed = null;
        }
    }

    /// <summary>True once the storage of this tensor went back to the pool (its scope ended); any access then throws.</summary>
    public bool IsReleased => Lease is { IsReleased: true };

    /// <summary>The accumulated gradient (same shape, contiguous) after <see cref="Backward"/>.</summary>
    public Tensor? Grad
    {
        get => _grad;
        set
        {
            if (_grad?.Lease is { } old) old.GradRefs--;
            _grad = value;
            if (value?.Lease is { } lease) lease.GradRefs++;
        }
    }

    /// <summary>True for a leaf that wants a gradient, or for any result computed from one while grad is on.</summary>
    public bool RequiresGrad { get; internal set; }

    /// <summary>The op that produced this tensor (null for leaves and for results computed under no-grad).</summary>
    internal Node? GradFn;

    Tensor(float[] storage, StorageLease? lease, int offset, int[] shape, int[] strides)
    {
        _storage = storage;
        Lease = lease;
        Offset = offset;
        _shape = shape;
        _strides = strides;
        Count = ShapeUtil.Count(shape);
        IsContiguous = ComputeContiguous();
    }

    Tensor((float[] Array, StorageLease? Lease) storage, int[] shape)
        : this(storage.Array, storage.Lease, 0, shape, ShapeUtil.ContiguousStrides(shape)) { }

    /// <summary>A new zero-filled contiguous tensor (pooled storage inside a <see cref="TensorScope"/>).</summary>
    internal Tensor(int[] shape) : this(TensorScope.Allocate(ShapeUtil.Count(shape), zeroed: true), shape) { }

    /// <summary>A new contiguous tensor whose elements are undefined (recycled values inside a scope). Only for ops
    /// that write every element before anything reads it: maps, copies, GEMMs with beta = 0, ….</summary>
    internal static Tensor Uninitialized(int[] shape) => new(TensorScope.Allocate(ShapeUtil.Count(shape), zeroed: false), shape);

    /// <summary>A tensor over a GC-owned array (never pooled).</summary>
    internal static Tensor OverArray(float[] storage, int offset, int[] shape, int[] strides) => new(storage, null, offset, shape, strides);

    /// <summary>A view: <paramref name="source"/>'s storage (and its lease) seen with another offset, shape and strides.</summary>
    internal static Tensor ViewOf(Tensor source, int offset, int[] shape, int[] strides) => new(source.Storage, source.Lease, offset, shape, strides);

    /// <summary>The sizes of the axes (a copy), e.g. (B, C, H, W); empty for a scalar.</summary>
    public int[] Shape => (int[])_shape.Clone();
    internal ReadOnlySpan<int> ShapeSpan => _shape;
    internal ReadOnlySpan<int> StridesSpan => _strides;
    /// <summary>Element strides of each axis in the storage (a copy); row-major for a contiguous tensor, 0 on a
    /// broadcast axis.</summary>
    public int[] Strides => (int[])_strides.Clone();
    /// <summary>The number of axes (0 for a scalar).</summary>
    public int Rank => _shape.Length;
    /// <summary>The number of elements, the product of <see cref="Shape"/>.</summary>
    public int Count { get; }
    /// <summary>True when the elements lie in row-major order with no gaps, so <see cref="Reshape"/> and the kernels
    /// need no copy.</summary>
    public bool IsContiguous { get; }
    /// <summary>The size of <paramref name="axis"/>; negative axes count from the end (-1 is the last).</summary>
    public int Dim(int axis) => _shape[ShapeUtil.Axis(axis, Rank, "Dim")];
    /// <summary>True for a tensor that no recorded op produced (created, loaded, or made under NoGrad), such as a
    /// parameter.</summary>
    public bool IsLeaf => GradFn is null;

    bool ComputeContiguous()
    {
        int s = 1;
        for (int i = _shape.Length - 1; i >= 0; i--)
        {
            if (_shape[i] != 1 && _strides[i] != s) return false;
            s *= _shape[i];
        }
        return true;
    }

    /// <summary>The elements in row-major order. Only for contiguous tensors (call <see cref="Contiguous"/> first).</summary>
    public Span<float> Data
    {
        get
        {
            if (!IsContiguous) throw new InvalidOperationException($"Data needs a contiguous tensor; this {ShapeUtil.Format(_shape)} view has strides {ShapeUtil.Format(_strides)}. Call Contiguous() first.");
            return Storage.AsSpan(Offset, Count);
        }
    }

    /// <summary>Marks a leaf as wanting a gradient. Returns this tensor, for chaining.</summary>
    public Tensor RequireGrad(bool requires = true)
    {
        if (!IsLeaf) throw new InvalidOperationException("RequireGrad applies to leaf tensors; use Detach() to cut a result from its graph.");
        RequiresGrad = requires;
        return this;
    }

    /// <summary>The same values with no autograd history (shares storage).</summary>
    public Tensor Detach() => ViewOf(this, Offset, _shape, _strides);

    /// <summary>The single value of a one-element tensor.</summary>
    public float Item()
    {
        if (Count != 1) throw new InvalidOperationException($"Item() needs a tensor with one element, got shape {ShapeUtil.Format(_shape)}");
        return Storage[Offset];
    }

    /// <summary>A fresh row-major array of the elements.</summary>
    public float[] ToArray()
    {
        var r = new float[Count];
        Kernels.Strided.Gather(this.Storage, Offset, _shape, _strides, r);
        return r;
    }

    /// <summary>Gradient of this scalar with respect to every tensor that requires grad; the graph is freed after.</summary>
    public void Backward(Tensor? gradient = null) => Graph.Backward(this, gradient);

    /// <summary>Hands the pooled storage of a temporary back at once (nothing happens for GC storage). Only for a tensor
    /// the caller made and that nothing else refers to: any later access through it or a view of it throws.</summary>
    internal void ReleaseScratch()
    {
        if (Lease is { GradRefs: 0 } lease) lease.Release(StorageLease.ReleasedBy.Owner);
    }

    /// <summary>True when this tensor covers its whole storage in row-major order (no view of a part of another).</summary>
    internal bool OwnsStorage => Offset == 0 && IsContiguous && _storage.Length == Count;

    /// <summary>True when both tensors are over the same storage (views of each other, or one written into the other's).</summary>
    internal bool SharesStorage(Tensor other) => ReferenceEquals(_storage, other._storage);

    /// <summary>Allocates the gradient buffer on first use and returns it (always contiguous, zero-initialised). A
    /// leaf's gradient outlives any scope, so it is never pooled; a non-leaf's is, and Backward releases it as soon
    /// as its node has consumed it.</summary>
    internal Span<float> GradData()
    {
        if (Grad is null) NewGrad(zeroed: true);
        return Grad!.Data;
    }

    /// <summary>Grad += g (g of this tensor's shape, row-major). A gradient not allocated yet is made as a copy of g:
    /// one pass over memory instead of zeroing and then adding.</summary>
    internal void AccumulateGrad(ReadOnlySpan<float> g)
    {
        if (Grad is null) Kernels.Binary.CopyInto(g, NewGrad(zeroed: false));
        else Kernels.Binary.AddInPlace(Grad.Data, g);
    }

    /// <summary>Grad += g for a g of this tensor's element count. A non-leaf with no gradient yet takes g's buffer as
    /// its gradient instead (nothing copied: the pass-through of an add, a reshape or a copy) and true is returned;
    /// the caller must then neither write g nor hand it to another tensor.</summary>
    internal bool AdoptOrAccumulateGrad(Tensor g)
    {
        if (Grad is null && !IsLeaf && g.IsContiguous)
        {
            Grad = ShapeUtil.Equal(g.ShapeSpan, _shape) ? g : ViewOf(g, g.Offset, _shape, ShapeUtil.ContiguousStrides(_shape));
            return true;
        }
        AccumulateGrad(g.Data);
        return false;
    }

    /// <summary>A new gradient buffer with undefined contents, for a backward that writes every element of it.</summary>
    internal Span<float> UninitializedGradData()
    {
        System.Diagnostics.Debug.Assert(Grad is null);
        return NewGrad(zeroed: false);
    }

    /// <summary>The gradient buffer for a backward that covers every element: the existing one to add into
    /// (accumulate = true), or, when there is none yet, a new one with undefined contents to write (accumulate = false,
    /// no zeroing pass).</summary>
    internal Span<float> GradForWrite(out bool accumulate)
    {
        accumulate = Grad is not null;
        return accumulate ? GradData() : NewGrad(zeroed: false);
    }

    /// <summary>Allocates the gradient buffer: a leaf's with the scope suspended (it outlives the step), a non-leaf's
    /// pooled and marked as one that Backward may release early.</summary>
    Span<float> NewGrad(bool zeroed)
    {
        if (IsLeaf)
            using (TensorScope.Suspend()) Grad = zeroed ? new Tensor(_shape) : Uninitialized(_shape);
        else
        {
            var g = zeroed ? new Tensor(_shape) : Uninitialized(_shape);
            if (g.Lease is { } lease) lease.IsGradBuffer = true;
            Grad = g;
        }
        return Grad!.Data;
    }

    /// <summary>"Tensor(shape)" followed by the values (G6, invariant culture) when there are at most 16, or a note
    /// when the storage was released.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder($"Tensor{ShapeUtil.Format(_shape)}");
        if (IsReleased) sb.Append(" (released: its scope ended)");
        else if (Count <= 16)
        {
            sb.Append(" [");
            sb.Append(string.Join(", ", ToArray().Select(v => v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture))));
            sb.Append(']');
        }
        return sb.ToString();
    }
}

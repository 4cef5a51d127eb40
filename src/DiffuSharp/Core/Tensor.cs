// The tensor: float32 storage, an N-d shape and strides over it (so views share storage), and the autograd
// fields. No maths here: ops live in Autograd/Ops.*.cs and the public one-liners in Tensor.Math.cs.
using System.Text;
using DiffuSharp.Autograd;

namespace DiffuSharp;

public sealed partial class Tensor
{
    internal float[] Storage;
    internal int Offset;
    readonly int[] _shape;
    readonly int[] _strides;

    /// <summary>The accumulated gradient (same shape, contiguous) after <see cref="Backward"/>.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>True for a leaf that wants a gradient, or for any result computed from one while grad is on.</summary>
    public bool RequiresGrad { get; internal set; }

    /// <summary>The op that produced this tensor (null for leaves and for results computed under no-grad).</summary>
    internal Node? GradFn;

    internal Tensor(float[] storage, int offset, int[] shape, int[] strides)
    {
        Storage = storage;
        Offset = offset;
        _shape = shape;
        _strides = strides;
        Count = ShapeUtil.Count(shape);
        IsContiguous = ComputeContiguous();
    }

    internal Tensor(int[] shape) : this(new float[ShapeUtil.Count(shape)], 0, shape, ShapeUtil.ContiguousStrides(shape)) { }

    public int[] Shape => (int[])_shape.Clone();
    internal ReadOnlySpan<int> ShapeSpan => _shape;
    internal ReadOnlySpan<int> StridesSpan => _strides;
    public int[] Strides => (int[])_strides.Clone();
    public int Rank => _shape.Length;
    public int Count { get; }
    public bool IsContiguous { get; }
    public int Dim(int axis) => _shape[ShapeUtil.Axis(axis, Rank, "Dim")];
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
    public Tensor Detach() => new(Storage, Offset, _shape, _strides);

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

    /// <summary>Allocates the gradient buffer on first use and returns it (always contiguous, zero-initialised).</summary>
    internal Span<float> GradData()
    {
        Grad ??= new Tensor(_shape);
        return Grad.Data;
    }

    public override string ToString()
    {
        var sb = new StringBuilder($"Tensor{ShapeUtil.Format(_shape)}");
        if (Count <= 16)
        {
            sb.Append(" [");
            sb.Append(string.Join(", ", ToArray().Select(v => v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture))));
            sb.Append(']');
        }
        return sb.ToString();
    }
}

// Scoped tensor memory: while a TensorScope is active on a thread, every tensor allocated there takes its storage
// from TensorPool, and disposing the scope hands all of it back at once, so a training or sampling step reuses the
// previous step's arrays instead of allocating (and page-faulting) new ones. Outside any scope nothing changes:
// storage is an ordinary GC array.
//
// Safety: storage is handed out through a StorageLease shared by the owning tensor and every view of it (reshape,
// slice, detach, …). Returning the storage marks the lease released, and any later access through any tensor over
// it throws ObjectDisposedException instead of reading recycled data. Scope.Keep(t) moves t's storage to the
// enclosing scope (or to the GC at the outermost level). Things that outlive a step are never scope storage:
// parameters, leaf gradients, optimizer and EMA state allocate with the scope suspended.
namespace DiffuSharp;

/// <summary>
/// An ambient, per-thread region whose tensors return their storage to a pool when it is disposed:
/// <c>using var scope = TensorScope.Begin();</c>. Tensors allocated in the scope, and every view of them, must not be
/// used after it ends (they throw <see cref="ObjectDisposedException"/>), unless passed to <see cref="Keep"/>.
/// Scopes nest; they must be disposed on the thread that began them, innermost first.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] static TensorScope? t_current;
    [ThreadStatic] static int t_unpooled;

    readonly TensorScope? _parent;
    readonly List<StorageLease> _leases = [];
    readonly int _threadId;
    readonly bool _ambient;
    bool _disposed;

    TensorScope(TensorScope? parent, bool ambient)
    {
        _parent = parent;
        _ambient = ambient;
        _threadId = Environment.CurrentManagedThreadId;
    }

    /// <summary>Starts a scope on this thread; it is current until disposed.</summary>
    public static TensorScope Begin()
    {
        var s = new TensorScope(t_current, ambient: true);
        t_current = s;
        return s;
    }

    /// <summary>The innermost active scope of this thread, or null.</summary>
    public static TensorScope? Current => t_current;

    /// <summary>Bytes of pooled storage allocated in this scope and not yet released or given to the GC.</summary>
    public long LiveBytes { get; private set; }

    /// <summary>The most <see cref="LiveBytes"/> seen: this scope's peak of pooled memory.</summary>
    public long PeakBytes { get; private set; }

    /// <summary>Until disposed, tensors on this thread take GC arrays even inside scopes (scopes still nest and
    /// Keep still works): the reference against which pooled results must be bit-identical.</summary>
    internal static Unpooling Unpooled() => new(0);

    /// <summary>Allocations go to the GC (no scope is current) until the returned value is disposed; the scope that
    /// was current becomes current again after. For state that outlives the scope: optimizer moments, EMA copies, …</summary>
    public static Suspension Suspend() => new(0);

    /// <summary>A region that owns storage without being current: tensors are moved into it with
    /// <see cref="KeepIn"/> and released when it is disposed (e.g. a value carried from one loop step to the next).</summary>
    internal static TensorScope Holder() => new(null, ambient: false);

    /// <summary>Moves <paramref name="tensor"/>'s storage (shared with all its views) from this scope to the enclosing
    /// one, or to the GC when this is the outermost scope. Storage from elsewhere (an outer scope, the GC) is left
    /// where it is. Returns <paramref name="tensor"/>. Its autograd graph is not kept: Detach() it if the graph's
    /// activations were allocated in this scope.</summary>
    public Tensor Keep(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ThrowIfDisposed();
        if (tensor.Lease is { } lease && ReferenceEquals(lease.Owner, this)) lease.MoveTo(_ambient ? _parent : null);
        return tensor;
    }

    /// <summary>Moves the storage of <paramref name="tensor"/> into <paramref name="holder"/>, from whichever scope
    /// owns it now, so it lives exactly as long as the holder.</summary>
    internal static void KeepIn(Tensor tensor, TensorScope holder)
    {
        if (tensor.Lease is { Owner: not null } lease) lease.MoveTo(holder);
    }

    /// <summary>Gives <paramref name="tensor"/>'s storage to the GC, whichever scope owns it (for state that lives
    /// as long as its owner: parameters, optimizer and EMA buffers).</summary>
    internal static void Persist(Tensor tensor)
    {
        if (tensor.Lease is { Owner: not null } lease) lease.MoveTo(null);
    }

    /// <summary>Storage for a new tensor: from the pool when a scope is current and the length is poolable.</summary>
    internal static (float[] Array, StorageLease? Lease) Allocate(int length, bool zeroed)
    {
        var scope = t_current;
        if (scope is null || length < TensorPool.MinPooledLength)
            return (new float[length], null);
        if (t_unpooled > 0) return (new float[length], null);
        var array = TensorPool.Rent(length);
        if (zeroed) Array.Clear(array);
        var lease = new StorageLease(array, scope);
        scope._leases.Add(lease);
        scope.LiveBytes += (long)length * sizeof(float);
        if (scope.LiveBytes > scope.PeakBytes) scope.PeakBytes = scope.LiveBytes;
        return (array, lease);
    }

    internal void Forget(long bytes) => LiveBytes -= bytes;

    internal void Adopt(StorageLease lease) => _leases.Add(lease);

    /// <summary>Ends a holder by giving its storage to the GC instead of the pool: its tensors stay valid.</summary>
    internal void PersistAll()
    {
        foreach (var lease in _leases)
            if (ReferenceEquals(lease.Owner, this)) lease.MoveTo(null);
        _leases.Clear();
        _disposed = true;
    }

    /// <summary>Returns the storage of every tensor allocated (and not kept) in this scope to the pool.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (Environment.CurrentManagedThreadId != _threadId)
            throw new InvalidOperationException("TensorScope.Dispose: a scope must be disposed on the thread that began it");
        if (_ambient && !ReferenceEquals(t_current, this))
            throw new InvalidOperationException("TensorScope.Dispose: an inner scope is still active; dispose scopes innermost first");
        _disposed = true;
        if (_ambient) t_current = _parent;
        foreach (var lease in _leases)
            if (ReferenceEquals(lease.Owner, this)) lease.Release(StorageLease.ReleasedBy.Scope);
        _leases.Clear();
    }

    void ThrowIfDisposed()
    {
        if (_disposed) throw new ObjectDisposedException(nameof(TensorScope), "this TensorScope has ended; Keep must be called before it is disposed");
    }

    /// <summary>See <see cref="Unpooled"/>.</summary>
    internal readonly struct Unpooling : IDisposable
    {
        readonly bool _active;
        internal Unpooling(int _) { t_unpooled++; _active = true; }
        public void Dispose() { if (_active) t_unpooled--; }
    }

    /// <summary>Makes allocations unpooled until disposed (see <see cref="Suspend"/>).</summary>
    public readonly struct Suspension : IDisposable
    {
        readonly TensorScope? _saved;
        readonly bool _active;
        internal Suspension(int _)
        {
            _saved = t_current;
            t_current = null;
            _active = true;
        }
        /// <summary>Restores the scope that was current when the suspension began.</summary>
        public void Dispose() { if (_active) t_current = _saved; }
    }
}

/// <summary>Pooled storage shared by a tensor and its views; released once, after which every access throws.</summary>
internal sealed class StorageLease
{
    internal enum ReleasedBy { None, Scope, Backward, Owner }

    readonly float[] _array;
    readonly TensorScope _origin;
    ReleasedBy _released;
    bool _counted = true;

    /// <summary>The scope that will release the storage, or null once it belongs to the GC.</summary>
    public TensorScope? Owner { get; private set; }

    /// <summary>True for a non-leaf gradient buffer made by GradData, which Backward may release early.</summary>
    public bool IsGradBuffer;

    /// <summary>How many tensors have a tensor over this storage as their <see cref="Tensor.Grad"/>.</summary>
    public int GradRefs;

    public StorageLease(float[] array, TensorScope owner) => (_array, Owner, _origin) = (array, owner, owner);

    public bool IsReleased => _released != ReleasedBy.None;

    public void MoveTo(TensorScope? owner)
    {
        Owner = owner;
        if (owner is null) Uncount();
        owner?.Adopt(this);
    }

    void Uncount()
    {
        if (_counted) _origin.Forget((long)_array.Length * sizeof(float));
        _counted = false;
    }

    /// <summary>Hands the array back to the pool (once; not for storage the GC owns).</summary>
    public void Release(ReleasedBy by)
    {
        if (_released != ReleasedBy.None || Owner is null) return;
        _released = by;
        Owner = null;
        Uncount();
        TensorPool.Return(_array);
    }

    public Exception UseAfterRelease(string what) => new ObjectDisposedException(nameof(Tensor), _released switch
    {
        ReleasedBy.Backward => $"{what}: this tensor is a gradient buffer whose memory went back to the pool during Backward (after its node's backward consumed it); read gradients of leaves, or Keep a copy",
        ReleasedBy.Owner => $"{what}: this temporary's memory went back to the pool as soon as the op that made it was done with it",
        _ => $"{what}: this tensor's memory went back to the pool when the TensorScope it was allocated in ended. To use it after the scope, call scope.Keep(tensor) before the scope ends, or copy it out with ToArray()",
    });
}

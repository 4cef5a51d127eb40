// The storage pool behind TensorScope: float arrays kept by exact length, because the activations of a training or
// sampling step repeat the same sizes every step. Arrays of a UNet's activations are far above the large-object
// threshold (85 000 bytes); left to the GC, each one is allocated on the large-object heap, handed back to the OS
// after a gen-2 collection and page-faulted in (zeroed by the kernel) on the next step. Kept here instead, they stay
// mapped and warm, and a steady-state step allocates no large arrays at all.
// Arrays shorter than MinPooledLength stay ordinary gen-0 garbage: cheap for the GC, not worth a lock.
namespace DiffuSharp;

/// <summary>Process-wide pool of tensor storage, used by tensors allocated inside a <see cref="TensorScope"/>.</summary>
public static class TensorPool
{
    /// <summary>Shorter arrays are never pooled (4 KiB: below this a gen-0 allocation is cheaper than the pool).</summary>
    public const int MinPooledLength = 1024;

    static readonly object Gate = new();
    static readonly Dictionary<int, Stack<float[]>> Free = [];
    static long _retainedBytes, _maxRetainedBytes = DefaultCap();
    static long _rents, _reuses, _returns;
    static long _outstandingBytes;                  // rented and not handed back (live tensors, and any given to the GC)

    /// <summary>Bytes held by arrays waiting in the pool (not those in use).</summary>
    public static long RetainedBytes { get { lock (Gate) return _retainedBytes; } }

    /// <summary>Bytes of pooled arrays rented and not handed back: the storage of live scope tensors (and of any whose
    /// storage was given to the GC by Keep at the outermost scope).</summary>
    internal static long OutstandingBytes { get { lock (Gate) return _outstandingBytes; } }

    /// <summary>Arrays handed back beyond this many retained bytes are dropped to the GC. Default: half of the memory
    /// available to the process. The pool needs about one training step's peak of activations to run churn-free.</summary>
    public static long MaxRetainedBytes
    {
        get { lock (Gate) return _maxRetainedBytes; }
        set
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), $"MaxRetainedBytes must be non-negative, got {value}");
            lock (Gate) { _maxRetainedBytes = value; TrimTo(value); }
        }
    }

    /// <summary>Drops every retained array to the GC (e.g. after sampling at a batch size that will not recur).</summary>
    public static void Trim() { lock (Gate) TrimTo(0); }

    /// <summary>(arrays rented, of which reused from the pool, arrays returned) since the process started.</summary>
    internal static (long Rents, long Reuses, long Returns) Counters { get { lock (Gate) return (_rents, _reuses, _returns); } }

    /// <summary>Test hook: fill every returned array with NaN, so a kernel that reads memory it never wrote is caught.</summary>
    internal static bool PoisonOnReturn;

    /// <summary>An array of exactly <paramref name="length"/> floats with undefined contents (a previous user's values).</summary>
    internal static float[] Rent(int length)
    {
        if (length < MinPooledLength) return new float[length];
        lock (Gate)
        {
            _rents++;
            _outstandingBytes += (long)length * sizeof(float);
            if (Free.TryGetValue(length, out var stack) && stack.Count > 0)
            {
                _reuses++;
                _retainedBytes -= (long)length * sizeof(float);
                return stack.Pop();
            }
        }
        return GC.AllocateUninitializedArray<float>(length);
    }

    /// <summary>Hands an array back; the caller must hold no other reference to it that will be read or written.</summary>
    internal static void Return(float[] array)
    {
        if (array.Length < MinPooledLength) return;
        if (PoisonOnReturn) array.AsSpan().Fill(float.NaN);
        lock (Gate)
        {
            _returns++;
            long bytes = (long)array.Length * sizeof(float);
            _outstandingBytes -= bytes;
            if (_retainedBytes + bytes > _maxRetainedBytes) return;
            if (!Free.TryGetValue(array.Length, out var stack)) Free[array.Length] = stack = new Stack<float[]>();
            stack.Push(array);
            _retainedBytes += bytes;
        }
    }

    static void TrimTo(long limit)
    {
        if (_retainedBytes <= limit) return;
        foreach (var stack in Free.Values)
            while (stack.Count > 0 && _retainedBytes > limit)
                _retainedBytes -= (long)stack.Pop().Length * sizeof(float);
    }

    static long DefaultCap()
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return available > 0 ? available / 2 : 1L << 31;
    }
}

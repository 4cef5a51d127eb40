// Parallel loops over struct work items (the ImageSharp IRowOperation pattern): no delegates per element,
// contiguous index ranges per thread, and a process-wide thread cap that tests can lower to 1.
namespace DiffuSharp.Kernels;

/// <summary>A unit of parallel work: <c>Invoke(i)</c> for every i in a range, on any thread.</summary>
public interface IWorkItem
{
    void Invoke(int index);
}

/// <summary>A unit of parallel work over a contiguous range [begin, end), for items that want the whole slice.</summary>
public interface IRangeWorkItem
{
    void Invoke(int begin, int end);
}

/// <summary>How many threads the kernels may use. Results never depend on it (every kernel is deterministic).</summary>
public static class Parallelism
{
    static int _maxThreads = Environment.ProcessorCount;

    public static int MaxThreads
    {
        get => _maxThreads;
        set => _maxThreads = value < 1 ? throw new ArgumentOutOfRangeException(nameof(value), $"MaxThreads must be at least 1, got {value}") : value;
    }
}

public static class ParallelFor
{
    /// <summary>Runs <paramref name="op"/> for every index in [0, count), split into contiguous ranges, one per thread.</summary>
    public static void Run<T>(int count, in T op, int minPerThread = 1) where T : struct, IWorkItem
    {
        var ranged = new Ranged<T>(op);
        RunRange(count, ranged, minPerThread);
    }

    /// <summary>Splits [0, count) into at most <see cref="Parallelism.MaxThreads"/> contiguous ranges of at least
    /// <paramref name="minPerThread"/> items and runs each on its own thread (the first on the caller's).</summary>
    public static void RunRange<T>(int count, in T op, int minPerThread = 1) where T : struct, IRangeWorkItem
    {
        if (count <= 0) return;
        int parts = Math.Min(Parallelism.MaxThreads, Math.Max(1, count / Math.Max(1, minPerThread)));
        if (parts <= 1)
        {
            op.Invoke(0, count);
            return;
        }
        T local = op;
        Parallel.For(0, parts, p =>
        {
            long begin = (long)count * p / parts, end = (long)count * (p + 1) / parts;
            local.Invoke((int)begin, (int)end);
        });
    }

    readonly struct Ranged<T>(T op) : IRangeWorkItem where T : struct, IWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int i = begin; i < end; i++) op.Invoke(i);
        }
    }
}

// Parallel loops over struct work items (the ImageSharp IRowOperation pattern): no delegates per element,
// contiguous index ranges per thread, and a process-wide thread cap that tests can lower to 1.
//
// The loops run on persistent worker threads that spin briefly between jobs, as OpenMP runtimes do. A UNet step
// issues thousands of kernels of a few hundred microseconds each; waking a sleeping pool thread for every one costs
// a context switch and an inter-processor interrupt each time (about 10k per second), which on a small virtual
// machine is a large share of the step. A worker that finds no job for SpinMicroseconds goes to sleep, so an idle
// process does not burn a core.
using System.Diagnostics;

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

    /// <summary>How long an idle worker keeps polling for the next job before it sleeps.</summary>
    public static int SpinMicroseconds
    {
        get => _spinMicroseconds;
        set => _spinMicroseconds = value < 0 ? throw new ArgumentOutOfRangeException(nameof(value), $"SpinMicroseconds must be 0 or more, got {value}") : value;
    }

    static int _spinMicroseconds = 2000;
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
        if (parts <= 1 || !WorkerPool.TryEnter())
        {
            // one part, or the pool is busy (a nested loop, or another thread's loop): the caller does it all.
            // Every kernel gives the same bits for any split, so this changes only the speed.
            op.Invoke(0, count);
            return;
        }
        try
        {
            var job = Job<T>.Instance;
            job.Op = op;
            job.Count = count;
            job.Parts = parts;
            WorkerPool.Run(job, parts);
            job.Op = default;
        }
        finally
        {
            WorkerPool.Exit();
        }
    }

    /// <summary>One cached job object per work-item type: only the pool's current owner touches it.</summary>
    sealed class Job<T> : WorkerPool.Job where T : struct, IRangeWorkItem
    {
        public static readonly Job<T> Instance = new();
        public T Op;
        public int Count, Parts;

        public override void RunPart(int part)
        {
            long begin = (long)Count * part / Parts, end = (long)Count * (part + 1) / Parts;
            Op.Invoke((int)begin, (int)end);
        }
    }

    readonly struct Ranged<T>(T op) : IRangeWorkItem where T : struct, IWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int i = begin; i < end; i++) op.Invoke(i);
        }
    }
}

/// <summary>Persistent worker threads: worker w runs part w + 1 of the current job; the caller runs part 0.</summary>
static class WorkerPool
{
    internal abstract class Job
    {
        public abstract void RunPart(int part);
    }

    sealed class Worker(int part)
    {
        public readonly int Part = part;
        public readonly ManualResetEventSlim Wake = new(false);
        public Job? Job;
        public long Ticket;        // raised by the caller for every job this worker takes part in
        public long Seen;
        public int Sleeping;
    }

    static readonly object Gate = new();
    static Worker[] _workers = [];
    static int _owner;             // 0 free, 1 taken by a caller
    static int _pending;           // parts not yet finished by workers
    static Exception? _failure;

    [ThreadStatic] static bool _isWorker;

    public static bool TryEnter() => !_isWorker && Interlocked.CompareExchange(ref _owner, 1, 0) == 0;

    public static void Exit() => Volatile.Write(ref _owner, 0);

    public static void Run(Job job, int parts)
    {
        EnsureWorkers(parts - 1);
        _failure = null;
        Volatile.Write(ref _pending, parts - 1);
        var workers = _workers;
        for (int w = 0; w < parts - 1; w++)
        {
            var worker = workers[w];
            worker.Job = job;
            Interlocked.Increment(ref worker.Ticket);   // publishes Job (full fence) before the sleep check
            if (Volatile.Read(ref worker.Sleeping) == 1) worker.Wake.Set();
        }

        Exception? mine = null;
        try { job.RunPart(0); }
        catch (Exception e) { mine = e; }

        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) != 0)
        {
            if (spin.Count < 64) Thread.SpinWait(20);
            else spin.SpinOnce(sleep1Threshold: -1);
        }
        var failure = mine ?? _failure;
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
    }

    static void EnsureWorkers(int count)
    {
        if (_workers.Length >= count) return;
        lock (Gate)
        {
            if (_workers.Length >= count) return;
            var grown = new Worker[count];
            Array.Copy(_workers, grown, _workers.Length);
            for (int w = _workers.Length; w < count; w++)
            {
                var worker = new Worker(w + 1);
                grown[w] = worker;
                new Thread(() => Loop(worker)) { IsBackground = true, Name = $"DiffuSharp worker {w + 1}" }.Start();
            }
            _workers = grown;
        }
    }

    static void Loop(Worker me)
    {
        _isWorker = true;
        while (true)
        {
            WaitForTicket(me);
            me.Seen++;
            var job = me.Job!;
            me.Job = null;
            try { job.RunPart(me.Part); }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            Interlocked.Decrement(ref _pending);
        }
    }

    static void WaitForTicket(Worker me)
    {
        long spinTicks = Parallelism.SpinMicroseconds * Stopwatch.Frequency / 1_000_000;
        long spinUntil = Stopwatch.GetTimestamp() + spinTicks;
        while (true)
        {
            for (int i = 0; i < 256; i++)
            {
                if (Volatile.Read(ref me.Ticket) != me.Seen) return;
                Thread.SpinWait(8);
            }
            if (Stopwatch.GetTimestamp() < spinUntil) continue;

            // sleep: announce it, then look once more so a ticket raised in between is not missed
            me.Wake.Reset();
            Interlocked.Exchange(ref me.Sleeping, 1);
            if (Volatile.Read(ref me.Ticket) == me.Seen) me.Wake.Wait();
            Interlocked.Exchange(ref me.Sleeping, 0);
            spinUntil = Stopwatch.GetTimestamp() + spinTicks;
        }
    }
}

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
    /// <summary>Does the work of item <paramref name="index"/>; called once per index, from any thread, in no
    /// particular order.</summary>
    void Invoke(int index);
}

/// <summary>A unit of parallel work over a contiguous range [begin, end), for items that want the whole slice.</summary>
public interface IRangeWorkItem
{
    /// <summary>Does the work of the indices [<paramref name="begin"/>, <paramref name="end"/>); the ranges of one run
    /// are disjoint and cover the whole count.</summary>
    void Invoke(int begin, int end);
}

/// <summary>How many threads the kernels may use. Results never depend on it (every kernel is deterministic).</summary>
public static class Parallelism
{
    static int _maxThreads = Environment.ProcessorCount;

    /// <summary>The most threads a kernel may use (at least 1; default <see cref="Environment.ProcessorCount"/>); tests
    /// lower it to 1. Throws <see cref="ArgumentOutOfRangeException"/> for a value below 1.</summary>
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

/// <summary>Runs struct work items over an index range on persistent worker threads, each thread taking a contiguous
/// range; no delegate per element.</summary>
public static class ParallelFor
{
    /// <summary>Runs <paramref name="op"/> for every index in [0, count), split into contiguous ranges.</summary>
    public static void Run<T>(int count, in T op, int minPerThread = 1) where T : struct, IWorkItem
    {
        var ranged = new Ranged<T>(op);
        RunRange(count, ranged, minPerThread);
    }

    /// <summary>Splits [0, count) into contiguous ranges of at least <paramref name="minPerThread"/> items (a few per
    /// thread, at most <see cref="Parallelism.MaxThreads"/> threads) that the caller and the workers claim one at a
    /// time. A worker that is late (descheduled, or asleep) simply finds fewer ranges left: the caller never waits for
    /// a thread that has not started. Every kernel gives the same bits for any split.</summary>
    public static void RunRange<T>(int count, in T op, int minPerThread = 1) where T : struct, IRangeWorkItem
    {
        if (count <= 0) return;
        int most = Math.Max(1, count / Math.Max(1, minPerThread));
        int threads = Math.Min(Parallelism.MaxThreads, most);
        if (threads <= 1 || !WorkerPool.TryEnter())
        {
            // one range, or the pool is busy (a nested loop, or another thread's loop): the caller does it all
            op.Invoke(0, count);
            return;
        }
        try
        {
            var job = Job<T>.Instance;
            job.Op = op;
            job.Count = count;
            job.Chunks = Math.Min(most, threads * ChunksPerThread);
            job.Next = 0;
            WorkerPool.Run(job, threads - 1);
            job.Op = default;
        }
        finally
        {
            WorkerPool.Exit();
        }
    }

    /// <summary><see cref="RunRange{T}"/> with every boundary between ranges a multiple of <paramref name="align"/>. A
    /// kernel with a vector body and a scalar tail (whose Exp, Log, … may round differently) then treats every element
    /// but the last few of the whole input the same way, whatever the thread count.</summary>
    public static void RunRangeAligned<T>(int count, in T op, int minPerThread, int align) where T : struct, IRangeWorkItem
    {
        if (count <= 0) return;
        RunRange((count + align - 1) / align, new Aligned<T>(op, count, align), Math.Max(1, minPerThread / align));
    }

    readonly struct Aligned<T>(T op, int count, int align) : IRangeWorkItem where T : struct, IRangeWorkItem
    {
        public void Invoke(int begin, int end) => op.Invoke(begin * align, (int)Math.Min((long)end * align, count));
    }

    /// <summary>Ranges per thread: enough that a late thread's share is picked up by the others, few enough that
    /// per-range set-up (packing, statistics) stays small.</summary>
    const int ChunksPerThread = 2;

    /// <summary>One cached job object per work-item type: only the pool's current owner touches it.</summary>
    sealed class Job<T> : WorkerPool.Job where T : struct, IRangeWorkItem
    {
        public static readonly Job<T> Instance = new();
        public T Op;
        public int Count, Chunks, Next;

        public override void RunChunks()
        {
            for (int c; (c = Interlocked.Increment(ref Next) - 1) < Chunks;)
            {
                long begin = (long)Count * c / Chunks, end = (long)Count * (c + 1) / Chunks;
                Op.Invoke((int)begin, (int)end);
            }
        }

        public override void Abandon() => Volatile.Write(ref Next, Chunks);
    }

    readonly struct Ranged<T>(T op) : IRangeWorkItem where T : struct, IWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int i = begin; i < end; i++) op.Invoke(i);
        }
    }
}

/// <summary>Persistent worker threads that help the caller drain a job's ranges.</summary>
static class WorkerPool
{
    internal abstract class Job
    {
        /// <summary>The switches of the thread that issued the job: the workers run it with them.</summary>
        public KernelSwitches Switches = KernelSwitches.Default;

        /// <summary>The op profile of the thread that issued the job, if any: the ops the workers run in it count there.
        /// (The one reference from the pool up to Autograd: the profiler is instrumentation, not a layer.)</summary>
        public Autograd.OpProfiler.Session? Profile;

        /// <summary>Claims and runs ranges until none is left.</summary>
        public abstract void RunChunks();

        /// <summary>Leaves the unclaimed ranges undone (after a failure).</summary>
        public abstract void Abandon();
    }

    const int Idle = 0, Offered = 1, Running = 2;

    sealed class Worker
    {
        public readonly ManualResetEventSlim Wake = new(false);
        public Job? Job;
        public int State;          // Idle, Offered (a job waits for this worker), Running
        public int Sleeping;
    }

    static readonly object Gate = new();
    static Worker[] _workers = [];
    static int _owner;             // 0 free, 1 taken by a caller
    static Exception? _failure;

    [ThreadStatic] static bool _isWorker;

    public static bool TryEnter() => !_isWorker && Interlocked.CompareExchange(ref _owner, 1, 0) == 0;

    public static void Exit() => Volatile.Write(ref _owner, 0);

    /// <summary>Offers <paramref name="job"/> to <paramref name="helpers"/> workers, drains it on the calling thread,
    /// then withdraws the offer from workers that have not started and waits only for those that have.</summary>
    public static void Run(Job job, int helpers)
    {
        EnsureWorkers(helpers);
        _failure = null;
        job.Switches = KernelSwitches.Current;
        job.Profile = Autograd.OpProfiler.ForJob;
        var workers = _workers;
        for (int w = 0; w < helpers; w++)
        {
            var worker = workers[w];
            worker.Job = job;
            Interlocked.Exchange(ref worker.State, Offered);   // publishes Job (full fence) before the sleep check
            if (Volatile.Read(ref worker.Sleeping) == 1) worker.Wake.Set();
        }

        try { job.RunChunks(); }
        catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); job.Abandon(); }

        for (int w = 0; w < helpers; w++)
        {
            var worker = workers[w];
            if (Interlocked.CompareExchange(ref worker.State, Idle, Offered) == Offered) continue;   // never started
            var spin = new SpinWait();
            while (Volatile.Read(ref worker.State) != Idle) spin.SpinOnce(sleep1Threshold: -1);
        }
        job.Profile = null;
        var failure = _failure;
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
                var worker = new Worker();
                grown[w] = worker;
                // UnsafeStart: a worker keeps no ExecutionContext of the thread that happened to start it (a
                // KernelSwitches scope or an op profile among it); it runs each job with the switches and the
                // profile of the job's caller
                new Thread(() => Loop(worker)) { IsBackground = true, Name = $"DiffuSharp worker {w + 1}" }.UnsafeStart();
            }
            _workers = grown;
        }
    }

    static void Loop(Worker me)
    {
        _isWorker = true;
        while (true)
        {
            WaitForOffer(me);
            if (Interlocked.CompareExchange(ref me.State, Running, Offered) != Offered) continue;   // withdrawn
            var job = me.Job!;
            var previous = KernelSwitches.EnterJob(job.Switches);
            var profile = job.Profile;
            var previousProfile = profile is null ? null : Autograd.OpProfiler.EnterJob(profile);
            try { job.RunChunks(); }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); job.Abandon(); }
            finally
            {
                KernelSwitches.LeaveJob(previous);
                if (profile is not null) Autograd.OpProfiler.LeaveJob(previousProfile);
            }
            me.Job = null;
            Volatile.Write(ref me.State, Idle);
        }
    }

    static void WaitForOffer(Worker me)
    {
        long spinTicks = Parallelism.SpinMicroseconds * Stopwatch.Frequency / 1_000_000;
        long spinUntil = Stopwatch.GetTimestamp() + spinTicks;
        while (true)
        {
            for (int i = 0; i < 64; i++)
            {
                if (Volatile.Read(ref me.State) == Offered) return;
                Thread.SpinWait(8);
            }
            if (Stopwatch.GetTimestamp() < spinUntil)
            {
                // let another runnable thread on this core go first: on a busy machine a spinning worker must not
                // hold the core that the caller, or another process, needs
                Thread.Yield();
                continue;
            }

            // sleep: announce it, then look once more so an offer made in between is not missed
            me.Wake.Reset();
            Interlocked.Exchange(ref me.Sleeping, 1);
            if (Volatile.Read(ref me.State) != Offered) me.Wake.Wait();
            Interlocked.Exchange(ref me.Sleeping, 0);
            spinUntil = Stopwatch.GetTimestamp() + spinTicks;
        }
    }
}

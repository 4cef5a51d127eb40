// Wall time per op, for finding where a training or sampling step goes (`diffusharp bench train --profile`).
// Forward: every op ends in Graph.Record, so the time since the previous op's Record (or since Start) is charged to
// this op — a gap attribution that also charges any glue code before an op to it. Backward: each node's closure
// is timed by name. Off unless started.
//
// A profile belongs to the code that started it, not to the process (as a KernelSwitches scope does): it is held in
// an AsyncLocal, so it sees the ops of the thread that called Start and of the tasks that thread starts, and every
// parallel loop hands it to the pool workers that help it (WorkerPool.Run), whose ops it counts too. Two profiles
// running at once (two tests, two requests) each see only their own ops. A pool worker times its ops from the start
// of its job; tasks started inside a profile share its forward clock, so their forward times overlap. With no
// profile running anywhere, the check at every op is one read of a static field.
using System.Diagnostics;

namespace DiffuSharp.Autograd;

/// <summary>Per-op wall time of forward and backward passes (<c>diffusharp bench train --profile</c>): off unless
/// <see cref="Start"/> was called. A profile counts the ops of the code that started it (its thread, the tasks that
/// thread starts, and the pool threads its parallel kernels run on), never those of other threads.</summary>
public static class OpProfiler
{
    internal sealed class Entry { public long ForwardTicks, BackwardTicks; public int ForwardCalls, BackwardCalls; }

    /// <summary>One profile: its table and its forward clock. Pool workers record into it beside its own thread, so
    /// every access holds its lock.</summary>
    internal sealed class Session(Session? outer)
    {
        public readonly Session? Outer = outer;            // the profile this one was started inside, resumed by Stop
        public readonly Dictionary<string, Entry> Entries = new(StringComparer.Ordinal);
        public long Last = Stopwatch.GetTimestamp();       // the forward clock of the thread that started it
        public bool Stopped;
    }

    static readonly AsyncLocal<Session?> s_current = new();

    /// <summary>Set on a pool worker while it runs a job: the profile of the thread that issued the job.</summary>
    [ThreadStatic] static Session? t_job;

    /// <summary>The forward clock of a pool worker within its current job.</summary>
    [ThreadStatic] static long t_jobLast;

    /// <summary>Profiles started and not yet stopped in the whole process: while 0, no op looks further.</summary>
    static int s_running;

    static Session? Current => t_job ?? s_current.Value;

    /// <summary>True between <see cref="Start"/> and <see cref="Stop"/> in the code that called them (and on the
    /// pool threads helping it); false elsewhere, even while another thread profiles.</summary>
    public static bool IsRunning => Volatile.Read(ref s_running) != 0 && Current is not null;

    /// <summary>Starts collecting for this thread and the tasks it starts; the forward clock starts now. Inside a
    /// running profile it starts an inner one, which counts the ops until its <see cref="Stop"/> (the outer one does
    /// not see them) and then hands back to the outer one. Call Start and Stop in the same method: like any AsyncLocal
    /// value, a profile started inside an async method is not seen by its caller once it returns.</summary>
    public static void Start()
    {
        Interlocked.Increment(ref s_running);
        s_current.Value = new Session(s_current.Value);
    }

    /// <summary>Restarts the forward clock, so time spent outside ops (data, optimizer) is not charged to the next op.</summary>
    public static void Mark()
    {
        if (Volatile.Read(ref s_running) == 0) return;
        if (t_job is not null) t_jobLast = Stopwatch.GetTimestamp();
        else if (s_current.Value is { } session) lock (session) session.Last = Stopwatch.GetTimestamp();
    }

    /// <summary>The totals of one op name.</summary>
    /// <param name="Op">the op's name as recorded in the graph (e.g. "Conv2d", "MatMul")</param>
    /// <param name="ForwardMs">forward wall time in milliseconds, including any glue code since the previous op</param>
    /// <param name="ForwardCalls">how many times the op ran forward</param>
    /// <param name="BackwardMs">wall time of its backward closures in milliseconds</param>
    /// <param name="BackwardCalls">how many of its backward closures ran</param>
    public readonly record struct Row(string Op, double ForwardMs, int ForwardCalls, double BackwardMs, int BackwardCalls);

    /// <summary>Stops this thread's profile (the innermost) and returns its totals, largest forward+backward time
    /// first; empty when it was running none.</summary>
    public static Row[] Stop()
    {
        var session = s_current.Value;
        if (session is null) return [];
        s_current.Value = session.Outer;
        KeyValuePair<string, Entry>[] entries;
        lock (session)
        {
            End(session);
            entries = [.. session.Entries];
        }
        static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
        return entries.Select(kv => new Row(kv.Key, Ms(kv.Value.ForwardTicks), kv.Value.ForwardCalls, Ms(kv.Value.BackwardTicks), kv.Value.BackwardCalls))
                      .OrderByDescending(r => r.ForwardMs + r.BackwardMs).ToArray();
    }

    /// <summary>Marks a profile ended (once): later records into it are dropped, and it no longer counts as running.</summary>
    static void End(Session session)
    {
        lock (session)
        {
            if (session.Stopped) return;
            session.Stopped = true;
        }
        Interlocked.Decrement(ref s_running);
    }

    // A task started inside the profile may still run ops after Stop: each record takes the lock and drops itself
    // when the profile has ended.
    internal static void Forward(string name)
    {
        if (Current is not { } session) return;
        long now = Stopwatch.GetTimestamp();
        lock (session)
        {
            if (session.Stopped) return;
            var e = Get(session.Entries, name);
            if (t_job is not null) { e.ForwardTicks += now - t_jobLast; t_jobLast = now; }   // a worker: its own clock
            else { e.ForwardTicks += now - session.Last; session.Last = now; }
            e.ForwardCalls++;
        }
    }

    internal static void Backward(string name, long startTicks)
    {
        if (Current is not { } session) return;
        long ticks = Stopwatch.GetTimestamp() - startTicks;
        lock (session)
        {
            if (session.Stopped) return;
            var e = Get(session.Entries, name);
            e.BackwardTicks += ticks;
            e.BackwardCalls++;
        }
    }

    static Entry Get(Dictionary<string, Entry> entries, string name)
    {
        if (!entries.TryGetValue(name, out var e)) entries[name] = e = new Entry();
        return e;
    }

    // ---- the pool workers (Kernels/ParallelFor.cs) ----

    /// <summary>The profile a parallel loop issued now hands to its workers: null (one static read) while no profile
    /// runs anywhere.</summary>
    internal static Session? ForJob => Volatile.Read(ref s_running) == 0 ? null : Current;

    /// <summary>A pool worker takes on the profile of the job it runs, its forward clock starting now; returns what it
    /// had before.</summary>
    internal static Session? EnterJob(Session session)
    {
        var previous = t_job;
        t_job = session;
        t_jobLast = Stopwatch.GetTimestamp();
        return previous;
    }

    internal static void LeaveJob(Session? previous) => t_job = previous;
}

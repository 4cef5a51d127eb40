// Wall time per op, for finding where a training or sampling step goes (`diffusharp bench train --profile`).
// Forward: every op ends in Graph.Record, so the time since the previous op's Record (or since Start) is charged to
// this op — a gap attribution that also charges any glue code before an op to it. Backward: each node's closure
// is timed by name. Off unless started; one thread (the one that runs the model) at a time.
using System.Diagnostics;

namespace DiffuSharp.Autograd;

/// <summary>Per-op wall time of forward and backward passes (<c>diffusharp bench train --profile</c>): off unless
/// <see cref="Start"/> was called, and one thread (the one running the model) at a time.</summary>
public static class OpProfiler
{
    sealed class Entry { public long ForwardTicks, BackwardTicks; public int ForwardCalls, BackwardCalls; }

    static Dictionary<string, Entry>? _entries;
    static long _last;

    /// <summary>True between <see cref="Start"/> and <see cref="Stop"/>.</summary>
    public static bool IsRunning => _entries is not null;

    /// <summary>Starts (or restarts) collecting; the forward clock starts now.</summary>
    public static void Start()
    {
        _entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        _last = Stopwatch.GetTimestamp();
    }

    /// <summary>Restarts the forward clock, so time spent outside ops (data, optimizer) is not charged to the next op.</summary>
    public static void Mark() => _last = Stopwatch.GetTimestamp();

    /// <summary>The totals of one op name.</summary>
    /// <param name="Op">the op's name as recorded in the graph (e.g. "Conv2d", "MatMul")</param>
    /// <param name="ForwardMs">forward wall time in milliseconds, including any glue code since the previous op</param>
    /// <param name="ForwardCalls">how many times the op ran forward</param>
    /// <param name="BackwardMs">wall time of its backward closures in milliseconds</param>
    /// <param name="BackwardCalls">how many of its backward closures ran</param>
    public readonly record struct Row(string Op, double ForwardMs, int ForwardCalls, double BackwardMs, int BackwardCalls);

    /// <summary>Stops collecting and returns the totals, largest forward+backward time first.</summary>
    public static Row[] Stop()
    {
        var entries = _entries ?? [];
        _entries = null;
        static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
        return entries.Select(kv => new Row(kv.Key, Ms(kv.Value.ForwardTicks), kv.Value.ForwardCalls, Ms(kv.Value.BackwardTicks), kv.Value.BackwardCalls))
                      .OrderByDescending(r => r.ForwardMs + r.BackwardMs).ToArray();
    }

    // A profile is process-wide: Stop on one thread may land between another thread's IsRunning check and its record,
    // so each record reads the table once and drops itself when the profile has ended.
    internal static void Forward(string name)
    {
        if (_entries is not { } entries) return;
        long now = Stopwatch.GetTimestamp();
        var e = Get(entries, name);
        e.ForwardTicks += now - _last;
        e.ForwardCalls++;
        _last = now;
    }

    internal static void Backward(string name, long startTicks)
    {
        if (_entries is not { } entries) return;
        var e = Get(entries, name);
        e.BackwardTicks += Stopwatch.GetTimestamp() - startTicks;
        e.BackwardCalls++;
    }

    static Entry Get(Dictionary<string, Entry> entries, string name)
    {
        if (!entries.TryGetValue(name, out var e)) entries[name] = e = new Entry();
        return e;
    }
}

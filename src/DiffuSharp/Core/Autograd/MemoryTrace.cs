// A timeline of memory through a forward pass, one row per op (`diffusharp bench sd15 --only vae --memory-trace`):
// after each op (at Graph.Record, as OpProfiler times it) the pooled bytes held by live tensors, the bytes waiting in
// TensorPool, the managed heap (GC.GetTotalMemory without a collection: live objects, the pool's arrays, the weights
// and garbage not yet collected), the resident set now, and the peak resident set since the previous row. That peak
// is the kernel's VmHWM, reset after every row through /proc/self/clear_refs (Linux), so each row's peak is the
// most the process held while that op ran, its scratch buffers included. Resetting VmHWM means a traced run cannot
// report the process's overall peak afterwards: the trace's own rows hold it. Off unless started; one thread at a time.
using System.Globalization;

namespace DiffuSharp.Autograd;

/// <summary>Per-op memory rows of a forward pass (see the file's comment); off unless <see cref="Start"/> was called.</summary>
internal static class MemoryTrace
{
    /// <summary>One op: its name and output shape; MiB of pooled storage held by tensors, waiting in the pool, on the
    /// managed heap, resident after the op, and resident at most while it ran (NaN where unknown).</summary>
    internal readonly record struct Row(int Index, string Op, string Shape, double LiveMiB, double RetainedMiB, double HeapMiB,
        double RssMiB, double PeakRssMiB);

    static List<Row>? s_rows;
    static bool s_canReset;
    static readonly object Gate = new();

    /// <summary>True between Start and Stop.</summary>
    internal static bool IsRunning => Volatile.Read(ref s_rows) is not null;

    /// <summary>Starts a timeline; the first row's peak counts from now.</summary>
    internal static void Start()
    {
        lock (Gate)
        {
            s_canReset = ResetPeak();
            s_rows = [new Row(0, "(start)", "", Mib(TensorPool.OutstandingBytes), Mib(TensorPool.RetainedBytes), Mib(GC.GetTotalMemory(false)),
                Status("VmRSS:"), double.NaN)];
        }
    }

    /// <summary>Stops and returns the rows.</summary>
    internal static Row[] Stop()
    {
        lock (Gate)
        {
            var rows = s_rows?.ToArray() ?? [];
            s_rows = null;
            return rows;
        }
    }

    /// <summary>A row after an op that made <paramref name="y"/>.</summary>
    internal static void Sample(string op, Tensor y)
    {
        lock (Gate)
        {
            if (s_rows is null) return;
            double peak = s_canReset ? Status("VmHWM:") : double.NaN;
            s_rows.Add(new Row(s_rows.Count, op, ShapeUtil.Format(y.ShapeSpan), Mib(TensorPool.OutstandingBytes), Mib(TensorPool.RetainedBytes),
                Mib(GC.GetTotalMemory(false)), Status("VmRSS:"), peak));
            if (s_canReset) ResetPeak();
        }
    }

    static double Mib(long bytes) => bytes / (1024.0 * 1024.0);

    /// <summary>A "VmXXX:  N kB" line of /proc/self/status in MiB, or the working set where there is none.</summary>
    static double Status(string key)
    {
        const string status = "/proc/self/status";
        if (File.Exists(status))
            foreach (var line in File.ReadLines(status))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
        return key == "VmRSS:" ? Environment.WorkingSet / (1024.0 * 1024.0) : double.NaN;
    }

    /// <summary>Resets the kernel's peak resident set to the current one (writes 5 to /proc/self/clear_refs).</summary>
    static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return false;
        }
    }
}

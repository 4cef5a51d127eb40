// bench sd15 --memory-trace: one more call of each component with MemoryTrace on, printed as a timeline, one row per op:
// pooled bytes of live tensors, bytes waiting in the pool, the managed heap, the resident set after the op and the most
// it reached while the op ran (scratch included). The row with the highest peak is printed again at the end, with the
// resident memory outside the managed heap (the runtime, native libraries, pages the GC has not given back).
using System.Globalization;
using DiffuSharp.Autograd;

namespace DiffuSharp.Cli;

static class BenchSd15Memory
{
    static double s_peakBefore;

    /// <summary>One call of <paramref name="call"/> in a TensorScope with the memory timeline on.</summary>
    public static MemoryTrace.Row[] Trace(Func<Tensor> call)
    {
        s_peakBefore = Math.Max(s_peakBefore, BenchTrain.PeakRssMb());   // the trace resets VmHWM: keep the peak so far
        MemoryTrace.Row[] rows;
        MemoryTrace.Start();
        try
        {
            using (TensorScope.Begin()) call();
        }
        finally
        {
            rows = MemoryTrace.Stop();
        }
        return rows;
    }

    /// <summary>The highest resident set seen before and during the traces (MiB), 0 without traces.</summary>
    public static double Peak(List<(string What, MemoryTrace.Row[] Rows)> traces)
    {
        if (traces.Count == 0) return 0;
        double peak = s_peakBefore;
        foreach (var (_, rows) in traces)
            foreach (var r in rows)
                peak = Math.Max(peak, double.IsNaN(r.PeakRssMiB) ? r.RssMiB : r.PeakRssMiB);
        return peak;
    }

    public static void Print(TextWriter stdout, string what, MemoryTrace.Row[] rows)
    {
        static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F0", CultureInfo.InvariantCulture);
        stdout.WriteLine($"\nmemory through one {what} call, MiB after each op (live: pooled storage of tensors; pool: waiting in TensorPool; heap: managed heap;");
        stdout.WriteLine("rss: resident after the op; peak: resident at most while the op ran):");
        stdout.WriteLine($"  {"#",4}  {"op",-28} {"output",-20} {"live",7} {"pool",7} {"heap",7} {"rss",7} {"peak",7}");
        foreach (var r in rows)
            stdout.WriteLine($"  {r.Index,4}  {Cut(r.Op, 28),-28} {Cut(r.Shape, 20),-20} {F(r.LiveMiB),7} {F(r.RetainedMiB),7} {F(r.HeapMiB),7} {F(r.RssMiB),7} {F(r.PeakRssMiB),7}");
        var top = rows.Where(r => !double.IsNaN(r.PeakRssMiB)).OrderByDescending(r => r.PeakRssMiB).FirstOrDefault();
        if (top.Op is null) return;
        stdout.WriteLine($"highest peak: {F(top.PeakRssMiB)} MiB while op #{top.Index} ({top.Op} → {top.Shape}) ran; after it: live {F(top.LiveMiB)}, pool {F(top.RetainedMiB)}, "
            + $"managed heap {F(top.HeapMiB)}, resident {F(top.RssMiB)} (of which outside the managed heap {F(top.RssMiB - top.HeapMiB)})");
    }

    static string Cut(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
}

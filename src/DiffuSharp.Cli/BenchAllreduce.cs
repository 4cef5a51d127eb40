// diffusharp bench allreduce: under mpirun, the cost of the one collective that data-parallel training adds per
// step, the in-place sum of a preset's flat gradient buffer (Trainer.Distributed.cs), timed after a barrier so no
// rank waits for another inside it. Prints rank 0's median, min and mean, the bus bandwidth that implies
// (2(N−1)/N · bytes / time, the ring all-reduce's traffic per rank), and what the ring all-reduce cost model
//   t(N) = 2(N−1)/N · S / BW + 2(N−1) · α        (Patarasuk & Yuan 2009; Thakur, Rabenseifner & Gropp 2005)
// gives for 8 and 64 ranks over 10 and 100 Gbit/s links, α the per-message latency given by --latency-us.
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Distributed;
using DiffuSharp.Models;
using DiffuSharp.NN;

namespace DiffuSharp.Cli;

public static class BenchAllreduce
{
    static readonly OptionSpec[] Options =
    [
        new("preset", "model preset whose gradient buffer is reduced: " + string.Join(" | ", Presets.All.Select(p => p.Name)), "mnist-s", Value: "NAME"),
        new("iters", "timed all-reduces", "50", Value: "N"),
        new("warmup", "untimed all-reduces before them (TCP connections open on the first)", "5", Value: "N"),
        new("latency_us", "per-message latency α for the projections, in µs (10: TCP over Ethernet)", "10", Value: "US"),
        new("json", "print one JSON object per line", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("bench allreduce", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("bench allreduce", "Times the gradient all-reduce of data-parallel training (run under mpirun).", Options)); return 0; }
        var preset = Presets.Get(o.Required("preset"));
        int iters = o.Int("iters", min: 1), warmup = o.Int("warmup", min: 0);
        double alpha = o.Double("latency_us", min: 0) * 1e-6;
        var world = Mpi.InitFromEnvironment(TimeSpan.FromSeconds(120))
            ?? throw new CliException($"bench allreduce: run it under mpirun, e.g. mpirun -n 2 ./diffusharp bench allreduce --preset {preset.Name}");

        long count = new UNetModel(preset.Model.ToUNetConfig(), new Rng(0)).ParameterCount();
        var grads = new float[count];
        new Rng((ulong)world.Rank + 1).FillNormal(grads);
        var times = new double[iters];
        for (int i = -warmup; i < iters; i++)
        {
            world.Barrier();
            long start = Stopwatch.GetTimestamp();
            world.AllreduceSum(grads);
            if (i >= 0) times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        world.Finish();
        if (!world.IsRoot) return 0;

        Array.Sort(times);
        double bytes = count * 4.0, median = times[iters / 2], n = world.Size;
        double busGbps = 2 * (n - 1) / n * bytes * 8 / median / 1e9;
        var rows = new List<(string Name, double Value, string Unit)>
        {
            ($"allreduce_{preset.Name}_n{world.Size}_median_ms", median * 1e3, "ms"),
            ($"allreduce_{preset.Name}_n{world.Size}_min_ms", times[0] * 1e3, "ms"),
            ($"allreduce_{preset.Name}_n{world.Size}_mean_ms", times.Average() * 1e3, "ms"),
            ($"allreduce_{preset.Name}_n{world.Size}_bus_gbit_per_s", busGbps, "Gbit/s"),
        };
        foreach (int ranks in new[] { 8, 64 })
            foreach (double gbps in new[] { 10.0, 100.0 })
                rows.Add(($"allreduce_{preset.Name}_model_n{ranks}_{gbps:F0}gbit_ms", RingSeconds(ranks, bytes, gbps * 1e9 / 8, alpha) * 1e3, "ms"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"# {preset.Name}: {count:N0} parameters, {bytes / 1e6:F2} MB of float32 gradients, {world.Size} ranks, {iters} all-reduces (α = {alpha * 1e6:F0} µs in the model)"));
        foreach (var (name, value, unit) in rows)
            stdout.WriteLine(o.Flag("json")
                ? string.Create(CultureInfo.InvariantCulture, $"{{\"name\":\"{name}\",\"value\":{value:G6},\"unit\":\"{unit}\"}}")
                : string.Create(CultureInfo.InvariantCulture, $"{name,-44} {value,10:F3} {unit}"));
        return 0;
    }

    /// <summary>Ring all-reduce of <paramref name="bytes"/> over <paramref name="ranks"/> ranks: a reduce-scatter and an
    /// all-gather, each N−1 steps sending S/N bytes per rank, at <paramref name="bytesPerSecond"/> per link.</summary>
    public static double RingSeconds(int ranks, double bytes, double bytesPerSecond, double latencySeconds)
        => 2.0 * (ranks - 1) / ranks * bytes / bytesPerSecond + 2.0 * (ranks - 1) * latencySeconds;
}

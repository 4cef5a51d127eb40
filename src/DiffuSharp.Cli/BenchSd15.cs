// diffusharp bench sd15: one UNet step of Stable Diffusion 1.5 at batch 2 (the guidance pair) on 4×64×64 latents with
// 2×77×768 context, a VAE decode 1×4×64×64 → 1×3×512×512 and the text encoder on 2×77 token ids, on seeded random weights in float32 without
// gradients: the settings of the reference data's sd15/sd15_bench.py (median of N calls after one warm-up; inputs
// N(0, 1); timesteps 500). Prints a table or, with --json, {"name", "value", "unit"} lines: sd15_unet_ms,
// sd15_vae_decode_ms, sd15_text_encoder_ms, sd15_peak_rss_mb, and the process CPU time of each call (sd15_unet_cpu_ms, …).
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Autograd;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Cli;

public static class BenchSd15
{
    static readonly OptionSpec[] Options =
    [
        new("json", "print one JSON object per line", IsFlag: true),
        new("only", "unet, vae or clip (default: all three, one after the other); with --kernels, a prefix of the shapes to run", Value: "NAME"),
        new("repeats", "timed calls after the warm-up (the median is reported); 0 builds the models and counts parameters only", Default: "3"),
        new("kernels", "instead: one-thread GFLOP/s of the largest operator shapes against the FMA ceiling", IsFlag: true),
        new("profile", "after the timing, one more call with the op profiler: where the time goes (table only)", IsFlag: true),
        new("memory-trace", "after the timing, one more call with a per-op memory timeline (table only; the peak RSS line is then the trace's highest row)", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("bench sd15", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("bench sd15", "Times Stable Diffusion 1.5-sized components on random weights.", Options)); return 0; }
        string? only = o.String("only");
        if (o.Flag("kernels")) { BenchSd15Kernels.Run(stdout, o.Flag("json"), Math.Max(1, o.Int("repeats", min: 0, max: 100)), only); return 0; }
        if (only is not null and not ("unet" or "vae" or "clip")) throw new CliException($"bench sd15: --only must be unet, vae or clip, got '{only}'");
        int repeats = o.Int("repeats", min: 0, max: 100);
        bool json = o.Flag("json");
        var rows = new List<(string Name, double Value, string Unit)>();
        var profiles = new List<(string What, OpProfiler.Row[] Rows)>();
        var traces = new List<(string What, MemoryTrace.Row[] Rows)>();
        using (Tensor.NoGrad())
        {
            if (only is null or "unet")
            {
                var unet = new UNet2DConditionModel(Sd15Configs.UNet, new Rng(0));
                unet.Eval();
                rows.Add(("sd15_unet_parameters", unet.ParameterCount(), "count"));     // diffusers: 859,520,964
                var sample = Tensor.RandN([2, 4, 64, 64], new Rng(1));
                var context = Tensor.RandN([2, 77, 768], new Rng(2));
                var t = Tensor.FromArray([500f, 500f], 2);
                if (repeats > 0)
                {
                    var (ms, cpuMs) = Median(repeats, () => unet.Forward(sample, t, context));
                    rows.Add(("sd15_unet_ms", ms, "ms"));
                    rows.Add(("sd15_unet_cpu_ms", cpuMs, "ms"));
                }
                if (o.Flag("profile")) profiles.Add(("unet", Profile(() => unet.Forward(sample, t, context))));
                if (o.Flag("memory-trace")) traces.Add(("unet", BenchSd15Memory.Trace(() => unet.Forward(sample, t, context))));
            }
            if (only is null or "vae")
            {
                var vae = new AutoencoderKL(Sd15Configs.Vae, new Rng(0));
                vae.Eval();
                rows.Add(("sd15_vae_parameters", vae.ParameterCount(), "count"));       // diffusers: 83,653,863
                var latents = Tensor.RandN([1, 4, 64, 64], new Rng(3));
                if (repeats > 0)
                {
                    var (ms, cpuMs) = Median(repeats, () => vae.Decode(latents));
                    rows.Add(("sd15_vae_decode_ms", ms, "ms"));
                    rows.Add(("sd15_vae_decode_cpu_ms", cpuMs, "ms"));
                }
                if (o.Flag("profile")) profiles.Add(("vae decode", Profile(() => vae.Decode(latents))));
                if (o.Flag("memory-trace")) traces.Add(("vae decode", BenchSd15Memory.Trace(() => vae.Decode(latents))));
            }
            if (only is null or "clip")
            {
                var clip = new ClipTextModel(Sd15Configs.TextEncoder, new Rng(0));
                clip.Eval();
                rows.Add(("sd15_text_encoder_parameters", clip.ParameterCount(), "count"));   // transformers: 123,060,480
                clip.PackForInference();                                                          // as StableDiffusionPipeline.Load does
                var ids = ClipIds();
                if (repeats > 0)
                {
                    var (ms, cpuMs) = Median(repeats, () => clip.Forward(ids, 2).LastHiddenState);
                    rows.Add(("sd15_text_encoder_ms", ms, "ms"));
                    rows.Add(("sd15_text_encoder_cpu_ms", cpuMs, "ms"));
                }
                if (o.Flag("profile")) profiles.Add(("text encoder", Profile(() => clip.Forward(ids, 2).LastHiddenState)));
                if (o.Flag("memory-trace")) traces.Add(("text encoder", BenchSd15Memory.Trace(() => clip.Forward(ids, 2).LastHiddenState)));
            }
        }
        rows.Add(("sd15_peak_rss_mb", Math.Max(BenchTrain.PeakRssMb(), BenchSd15Memory.Peak(traces)), "MB"));
        foreach (var (name, v, unit) in rows)
            stdout.WriteLine(json
                ? $"{{\"name\": \"{name}\", \"value\": {v.ToString("R", CultureInfo.InvariantCulture)}, \"unit\": \"{unit}\"}}"
                : $"{name,-24} {v.ToString("F1", CultureInfo.InvariantCulture),12}  {unit}");
        foreach (var (what, prof) in profiles)
        {
            if (json) break;
            double total = prof.Sum(r => r.ForwardMs);
            stdout.WriteLine($"\nwhere one {what} call goes (wall time per op, {total.ToString("F0", CultureInfo.InvariantCulture)} ms in all):");
            foreach (var r in prof.Take(12))
                stdout.WriteLine($"  {r.Op,-22} {r.ForwardMs.ToString("F0", CultureInfo.InvariantCulture),9} ms  {(100 * r.ForwardMs / total).ToString("F1", CultureInfo.InvariantCulture),5} %  {r.ForwardCalls,6} calls");
        }
        if (!json) foreach (var (what, trace) in traces) BenchSd15Memory.Print(stdout, what, trace);
        return 0;
    }

    /// <summary>2×77 ids as sd15_bench.py draws them: start 49406, 20 ids in [1, 49405], end 49407, padded with 49407.</summary>
    static int[] ClipIds()
    {
        var rng = new Random(3);
        var ids = new int[2 * 77];
        for (int b = 0; b < 2; b++)
        {
            ids[b * 77] = 49406;
            for (int i = 1; i <= 20; i++) ids[b * 77 + i] = rng.Next(1, 49406);
            for (int i = 21; i < 77; i++) ids[b * 77 + i] = 49407;
        }
        return ids;
    }

    static OpProfiler.Row[] Profile(Func<Tensor> call)
    {
        OpProfiler.Start();
        using (TensorScope.Begin()) call();
        return OpProfiler.Stop();
    }

    /// <summary>One warm-up call, then the median of <paramref name="repeats"/> timed calls, each in a TensorScope
    /// (as a sampling loop runs its steps), in milliseconds of wall time; and the median CPU time of the process over
    /// the same calls (all threads), which says more than the wall time on a machine shared with other work.</summary>
    static (double WallMs, double CpuMs) Median(int repeats, Func<Tensor> call)
    {
        var times = new double[repeats];
        var cpu = new double[repeats];
        var self = Process.GetCurrentProcess();
        for (int i = -1; i < repeats; i++)
        {
            self.Refresh();
            var cpuStart = self.TotalProcessorTime;
            long start = Stopwatch.GetTimestamp();
            using (TensorScope.Begin()) call();
            if (i < 0) continue;
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            self.Refresh();
            cpu[i] = (self.TotalProcessorTime - cpuStart).TotalMilliseconds;
        }
        Array.Sort(times);
        Array.Sort(cpu);
        return (times[repeats / 2], cpu[repeats / 2]);
    }
}

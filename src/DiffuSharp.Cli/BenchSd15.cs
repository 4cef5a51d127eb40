// diffusharp bench sd15: one UNet step of Stable Diffusion 1.5 at batch 2 (the guidance pair) on 4×64×64 latents with
// 2×77×768 context, and a VAE decode 1×4×64×64 → 1×3×512×512, on seeded random weights in float32 without
// gradients: the settings of the reference data's sd15/sd15_bench.py (median of N calls after one warm-up; inputs
// N(0, 1); timesteps 500). Prints a table or, with --json, {"name", "value", "unit"} lines: sd15_unet_ms,
// sd15_vae_decode_ms, sd15_peak_rss_mb.
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Cli;

public static class BenchSd15
{
    static readonly OptionSpec[] Options =
    [
        new("json", "print one JSON object per line", IsFlag: true),
        new("only", "unet or vae (default: both, one after the other)", Value: "NAME"),
        new("repeats", "timed calls after the warm-up (the median is reported)", Default: "3"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("bench sd15", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("bench sd15", "Times Stable Diffusion 1.5-sized components on random weights.", Options)); return 0; }
        string? only = o.String("only");
        if (only is not null and not ("unet" or "vae")) throw new CliException($"bench sd15: --only must be unet or vae, got '{only}'");
        int repeats = o.Int("repeats", min: 1, max: 100);
        bool json = o.Flag("json");
        var rows = new List<(string Name, double Value, string Unit)>();
        using (Tensor.NoGrad())
        {
            if (only is null or "unet")
            {
                var unet = new UNet2DConditionModel(Sd15Configs.UNet, new Rng(0));
                unet.Eval();
                var sample = Tensor.RandN([2, 4, 64, 64], new Rng(1));
                var context = Tensor.RandN([2, 77, 768], new Rng(2));
                var t = Tensor.FromArray([500f, 500f], 2);
                rows.Add(("sd15_unet_ms", Median(repeats, () => unet.Forward(sample, t, context)), "ms"));
            }
            if (only is null or "vae")
            {
                var vae = new AutoencoderKL(Sd15Configs.Vae, new Rng(0));
                vae.Eval();
                var latents = Tensor.RandN([1, 4, 64, 64], new Rng(3));
                rows.Add(("sd15_vae_decode_ms", Median(repeats, () => vae.Decode(latents)), "ms"));
            }
        }
        rows.Add(("sd15_peak_rss_mb", BenchTrain.PeakRssMb(), "MB"));
        foreach (var (name, v, unit) in rows)
            stdout.WriteLine(json
                ? $"{{\"name\": \"{name}\", \"value\": {v.ToString("R", CultureInfo.InvariantCulture)}, \"unit\": \"{unit}\"}}"
                : $"{name,-24} {v.ToString("F1", CultureInfo.InvariantCulture),12}  {unit}");
        return 0;
    }

    /// <summary>One warm-up call, then the median of <paramref name="repeats"/> timed calls, each in a TensorScope
    /// (as a sampling loop runs its steps), in milliseconds.</summary>
    static double Median(int repeats, Func<Tensor> call)
    {
        var times = new double[repeats];
        for (int i = -1; i < repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            using (TensorScope.Begin()) call();
            if (i >= 0) times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[repeats / 2];
    }
}

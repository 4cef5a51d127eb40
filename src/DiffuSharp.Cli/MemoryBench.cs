// diffusharp bench memory: times whole training steps (Trainer.Step: forward, MSE loss, backward, AdamW, EMA,
// zero-grad) or DDIM sampling steps of a UNet on random data, and reports what the garbage collector and the
// kernel see: median ms per step, gen-2 collections per 100 steps, managed bytes allocated per step and the peak
// resident set (VmHWM). Presets are the shapes of PyTorch's reference runs: mnist-s (1×28×28, 32 channels, mult
// 1,2,2, attention at 14×14 and in the middle) and cifar-s (3×32×32, 64 channels, mult 1,2,2,2, attention at 16×16).
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Data;
using DiffuSharp.Diffusion;
using DiffuSharp.Models;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class MemoryBench
{
    static readonly OptionSpec[] Options =
    [
        new("preset", "mnist-s | cifar-s", "mnist-s", Value: "NAME"),
        new("mode", "train | sample", "train", Value: "MODE"),
        new("steps", "timed steps", "20", Value: "N"),
        new("warmup", "untimed steps first", "3", Value: "N"),
        new("batch_size", "images per step", "32", Value: "N"),
        new("unpooled", "every tensor a fresh GC array, as without TensorScope (the reference to compare with)", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static ModelConfig Preset(string name) => name switch
    {
        "mnist-s" => new ModelConfig
        {
            ImageSize = 28, InChannels = 1, NumChannels = 32, NumResBlocks = 2, ChannelMult = "1,2,2", AttentionResolutions = "14",
            DiffusionSteps = 1000,
        },
        "cifar-s" => new ModelConfig
        {
            ImageSize = 32, InChannels = 3, NumChannels = 64, NumResBlocks = 2, ChannelMult = "1,2,2,2", AttentionResolutions = "16",
            DiffusionSteps = 1000,
        },
        _ => throw new CliException($"bench memory: unknown preset '{name}'; presets: mnist-s, cifar-s"),
    };

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("bench memory", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("bench memory", "Times training or sampling steps and reports GC and peak memory.", Options)); return 0; }
        var model = Preset(o.Required("preset"));
        int steps = o.Int("steps", min: 1), warmup = o.Int("warmup", min: 0), batch = o.Int("batch_size", min: 1);
        string mode = o.Required("mode");
        using var unpooled = o.Flag("unpooled") ? TensorScope.Unpooled() : default;

        var rng = new Rng(1);
        int len = model.InChannels * model.ImageSize * model.ImageSize, count = Math.Max(batch, 256);
        var images = new float[count * len];
        rng.FillUniform(images, -1f, 1f);
        var data = new ImageDataset(images, count, model.InChannels, model.ImageSize, model.ImageSize);
        var trainer = new Trainer(model, new TrainConfig(BatchSize: batch, Lr: 1e-4, EmaRate: "0.9999", TotalSteps: long.MaxValue), data);

        Action step = mode switch
        {
            "train" => () => trainer.Step(),
            "sample" => SampleStep(trainer, batch),
            _ => throw new CliException($"bench memory: unknown mode '{mode}' (train or sample)"),
        };
        for (int i = 0; i < warmup; i++) step();

        var ms = new double[steps];
        int gen2 = GC.CollectionCount(2), gen0 = GC.CollectionCount(0);
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < steps; i++)
        {
            var sw = Stopwatch.StartNew();
            step();
            ms[i] = sw.Elapsed.TotalMilliseconds;
        }
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        gen2 = GC.CollectionCount(2) - gen2;
        gen0 = GC.CollectionCount(0) - gen0;
        Array.Sort(ms);
        var ci = CultureInfo.InvariantCulture;
        stdout.WriteLine(string.Create(ci, $"{o.Required("preset")} {mode} batch {batch}: {steps} steps{(o.Flag("unpooled") ? ", unpooled" : "")}, {trainer.Model.ParameterCount() / 1e6:F2}M parameters"));
        stdout.WriteLine(string.Create(ci, $"  ms/step      median {ms[steps / 2]:F1}  min {ms[0]:F1}  max {ms[^1]:F1}"));
        stdout.WriteLine(string.Create(ci, $"  gen2/100     {100.0 * gen2 / steps:F1}   (gen0/100 {100.0 * gen0 / steps:F1})"));
        stdout.WriteLine(string.Create(ci, $"  MB alloc/step {allocated / 1048576.0 / steps:F2}"));
        stdout.WriteLine(string.Create(ci, $"  peak RSS     {PeakRssMiB()} MiB (VmHWM), pool holds {TensorPool.RetainedBytes / 1048576.0:F0} MiB"));
        return 0;
    }

    /// <summary>One DDIM step (50-step respacing) at a fixed t on the live weights, x_t carried to the next call.</summary>
    static Action SampleStep(Trainer trainer, int batch)
    {
        var cfg = trainer.ModelConfig;
        var diffusion = DiffusionFactory.Create(cfg.ToDiffusionConfig() with { TimestepRespacing = "ddim50" });
        trainer.Model.Eval();
        int[] shape = [batch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize];
        var rng = new Rng(2);
        IEnumerator<SampleStep>? loop = null;
        return () =>
        {
            if (loop is null || !loop.MoveNext())
            {
                loop = diffusion.DdimSampleLoopProgressive((x, t) => trainer.Model.Forward(x, t), shape, rng).GetEnumerator();
                loop.MoveNext();
            }
        };
    }

    static string PeakRssMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return (long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) / 1024).ToString(CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        return "?";
    }
}

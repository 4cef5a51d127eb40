// diffusharp bench latent: one training step of train-latent's default models (UNet2DConditionModel and CLIP text
// encoder, trained together), timed on random data of the shipped shapes, as scripts/bench_latent_torch.py times the
// same models in PyTorch diffusers + transformers. Step: token ids (B, L) → text encoder → last hidden state;
// x_t = √ᾱ x_0 + √(1 − ᾱ) ε at t ~ U{0..999} (scaled_linear β); UNet(x_t, t, context); ε-MSE; backward through both;
// AdamW (lr 1e-4, weight decay 0.01, torch's defaults otherwise) over both; zero-grad. Sampling step: one no-grad
// forward of the classifier-free guidance pair (2B) in eval mode. Reported: medians (min, max) after warm-up, and the
// process's peak RSS.
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Diffusion;
using DiffuSharp.Kernels;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class BenchLatent
{
    const double Lr = 1e-4, WeightDecay = 0.01;

    static readonly OptionSpec[] Options =
    [
        new("json", "print one JSON object per line", IsFlag: true),
        new("steps", "timed training steps", "10", Value: "N"),
        new("warmup", "untimed training steps before them (and as many sampling steps)", "2", Value: "N"),
        new("sample-steps", "timed sampling steps", "10", Value: "N"),
        new("batch", "batch size", "64", Value: "N"),
        new("latent-size", "latent side (train-latent's Fashion-MNIST VAE: 8)", "8", Value: "N"),
        new("threads", "kernel threads (default: all cores)", Value: "N"),
        new("seed", "seed of the weights and data", "0", Value: "N"),
        new("write-configs", "write the two models' config.json (DIR/unet, DIR/text_encoder) for scripts/bench_latent_torch.py and exit", Value: "DIR"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("bench latent", args, Options);
        if (o.Flag("help"))
        {
            stdout.WriteLine(OptionParser.Help("bench latent", "Times a text-to-image latent training step (UNet + text encoder) and a guided sampling step of train-latent's default models.", Options));
            return 0;
        }
        int steps = o.Int("steps", 1, 1_000_000), warmup = o.Int("warmup", 0, 1_000_000), sampleSteps = o.Int("sample-steps", 1, 1_000_000);
        int B = o.Int("batch", 1, 4096), size = o.Int("latent-size", 1, 1024);
        int threads = o.Has("threads") ? o.Int("threads", 1, 1024) : Parallelism.MaxThreads;
        var (unetConfig, textConfig) = TrainLatentCommand.DefaultModels(4, size);
        if (o.String("write-configs") is { } dir)
        {
            var options = new System.Text.Json.JsonSerializerOptions { WriteIndented = true };
            Directory.CreateDirectory(Path.Combine(dir, "unet"));
            Directory.CreateDirectory(Path.Combine(dir, "text_encoder"));
            File.WriteAllText(Path.Combine(dir, "unet", "config.json"), UNet2DConditionFolder.ConfigJson(unetConfig).ToJsonString(options) + "\n");
            File.WriteAllText(Path.Combine(dir, "text_encoder", "config.json"), NN.Clip.ClipTextFolder.ConfigJson(textConfig).ToJsonString(options) + "\n");
            stdout.WriteLine($"wrote {Path.Combine(dir, "unet", "config.json")} and {Path.Combine(dir, "text_encoder", "config.json")}");
            return 0;
        }

        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = threads;
        try
        {
            var root = new Rng((ulong)o.Int("seed", 0));
            var model = new TextToImageModel(unetConfig, textConfig, root.Fork());
            var data = root.Fork();
            var flat = model.PackParameters();
            var flatParam = Tensor.Wrap(flat.Values, flat.Values.Length);
            flatParam.Grad = Tensor.Wrap(flat.Grads, flat.Grads.Length);
            var optimizer = new AdamW([flatParam], new AdamWConfig(Lr: Lr, WeightDecay: WeightDecay));
            var noise = SchedulerConfig.DefaultsFor("DDPMScheduler") with { BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = Schedulers.BetaSchedule.ScaledLinear };
            var ac = ScheduleMath.AlphasCumprod(ScheduleMath.Betas(noise));

            int L = textConfig.MaxPositionEmbeddings, C = unetConfig.InChannels, len = C * size * size;
            var ids = new int[B * L];
            for (int i = 0; i < ids.Length; i++) ids[i] = data.NextInt(textConfig.VocabSize);
            var x0 = new float[B * len];
            data.FillNormal(x0);

            void TrainStep()
            {
                using var scope = TensorScope.Begin();
                var eps = new float[B * len];
                data.FillNormal(eps);
                var xt = new float[B * len];
                var t = new float[B];
                for (int b = 0; b < B; b++)
                {
                    int tb = data.NextInt(noise.NumTrainTimesteps);
                    t[b] = tb;
                    float a = (float)Math.Sqrt(ac[tb]), s = (float)Math.Sqrt(1 - ac[tb]);
                    for (int k = b * len; k < (b + 1) * len; k++) xt[k] = a * x0[k] + s * eps[k];
                }
                var context = model.TextEncoder.Forward(ids, B).LastHiddenState;
                var output = model.UNet.Forward(Tensor.FromArray(xt, B, C, size, size), Tensor.FromArray(t, B), context);
                var loss = DiffusionLosses.MeanFlat((Tensor.FromArray(eps, B, C, size, size) - output).Square()).Mean();
                loss.Backward();
                optimizer.Step();
                model.ZeroGrad();
            }

            var xT = new float[2 * B * len];
            data.FillNormal(xT);
            void SampleStep()
            {
                using var scope = TensorScope.Begin();
                using var _ = Tensor.NoGrad();
                var idsPair = new int[2 * B * L];
                for (int i = 0; i < idsPair.Length; i++) idsPair[i] = ids[i % ids.Length];
                var context = model.TextEncoder.Forward(idsPair, 2 * B).LastHiddenState;
                model.UNet.Forward(Tensor.FromArray(xT, 2 * B, C, size, size), Tensor.FromArray([500f], 1), context);
            }

            model.Train();
            for (int i = 0; i < warmup; i++) TrainStep();
            var train = Enumerable.Range(0, steps).Select(_ => Time(TrainStep)).ToArray();
            model.Eval();
            for (int i = 0; i < warmup; i++) SampleStep();
            var sample = Enumerable.Range(0, sampleSteps).Select(_ => Time(SampleStep)).ToArray();
            double rss = PeakRssMb();
            string shape = $"batch {B}, latents {C}×{size}×{size}, UNet {string.Join(",", unetConfig.BlockOutChannels)} ({model.UNet.ParameterCount():N0}), text {textConfig.NumHiddenLayers}×{textConfig.HiddenSize} ({model.TextEncoder.ParameterCount():N0}), {threads} threads";
            var inv = CultureInfo.InvariantCulture;
            if (o.Flag("json"))
            {
                string Row(string name, double[] v, string extra = "") => string.Create(inv,
                    $"{{\"name\": \"{name}\", \"value\": {Median(v):F2}, \"unit\": \"ms\", \"min\": {v.Min():F2}, \"max\": {v.Max():F2}, \"samples\": {v.Length}, \"batch\": {B}{extra}}}");
                stdout.WriteLine(Row("latent_train_step_ms", train));
                stdout.WriteLine(Row("latent_sample_step_ms", sample, ", \"cfg_pair\": true"));
                stdout.WriteLine(string.Create(inv, $"{{\"name\": \"peak_rss_mb\", \"value\": {rss:F1}, \"unit\": \"MB\"}}"));
            }
            else
            {
                stdout.WriteLine($"bench latent: {shape}");
                stdout.WriteLine(string.Create(inv, $"  training step     {Median(train),9:F1} ms  (min {train.Min():F1}, max {train.Max():F1}, {train.Length} steps)"));
                stdout.WriteLine(string.Create(inv, $"  sampling step (2B) {Median(sample),8:F1} ms  (min {sample.Min():F1}, max {sample.Max():F1}, {sample.Length} steps)"));
                stdout.WriteLine(string.Create(inv, $"  peak RSS          {rss,9:F1} MB"));
            }
            return 0;
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    static double Time(Action step)
    {
        long start = Stopwatch.GetTimestamp();
        step();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    static double Median(double[] v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>VmHWM of /proc/self/status in MiB (0 where there is none).</summary>
    static double PeakRssMb()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? 0 : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { return 0; }
    }
}

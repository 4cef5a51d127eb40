// diffusharp bench train: one preset's UNet (Models/Presets.cs), timed on random data in [-1, 1] of the preset's
// shape, as scripts/bench_train_torch.py times the same model in PyTorch.
// Training step: t ~ U{0..T−1} (the uniform schedule sampler), x_t = q_sample(x_0, t, ε), ε-prediction MSE loss
// (GaussianDiffusion.TrainingLosses, mean over the batch), backward, AdamW step (lr 2e-4, weight decay 0.01:
// torch.optim.AdamW's defaults), zero-grad. Sampling step: one no-grad, eval-mode forward of a noise batch at
// random t. Reported: medians (with min and max) after warm-up, the process's peak RSS (VmHWM: run one preset per
// process), gen-2 collections per 100 timed training steps and managed bytes allocated per training step.
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Autograd;
using DiffuSharp.Diffusion;
using DiffuSharp.Kernels;
using DiffuSharp.Models;
using DiffuSharp.NN;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class BenchTrain
{
    const double Lr = 2e-4, WeightDecay = 0.01;

    static readonly OptionSpec[] Options =
    [
        new("preset", "model preset: " + string.Join(" | ", Presets.All.Select(p => p.Name)), Value: "NAME"),
        new("json", "print one JSON object per line", IsFlag: true),
        new("steps", "timed training steps", "12", Value: "N"),
        new("warmup", "untimed training steps before them (and as many sampling steps)", "2", Value: "N"),
        new("sample-steps", "timed sampling steps", "10", Value: "N"),
        new("batch", "batch size (default: the preset's)", Value: "N"),
        new("threads", "kernel threads (default: all cores)", Value: "N"),
        new("seed", "seed of the weights, data, timesteps, noise and dropout", "0", Value: "N"),
        new("profile", "also print the time per op (forward, backward) of the timed steps", IsFlag: true),
        new("unpooled", "every tensor a fresh GC array, as without TensorScope (the reference to compare with)", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("bench train", args, Options);
        if (o.Flag("help"))
        {
            stdout.WriteLine(OptionParser.Help("bench train", "Times a UNet training step and sampling step of a preset.", Options));
            return 0;
        }
        string name = o.Required("preset");
        if (!Presets.TryGet(name, out var preset))
            throw new CliException($"bench train: unknown preset '{name}'; presets: {Presets.Names}");
        var settings = new Settings(
            Steps: o.Int("steps", min: 1, max: 1_000_000),
            Warmup: o.Int("warmup", min: 0, max: 1_000_000),
            SampleSteps: o.Int("sample-steps", min: 1, max: 1_000_000),
            Batch: o.Has("batch") ? o.Int("batch", min: 1, max: 4096) : preset.BatchSize,
            Seed: o.Int("seed", min: 0),
            Profile: o.Flag("profile"));
        int threads = o.Has("threads") ? o.Int("threads", min: 1, max: 1024) : Parallelism.MaxThreads;

        int savedThreads = Parallelism.MaxThreads;
        Parallelism.MaxThreads = threads;
        Result r;
        using var unpooled = o.Flag("unpooled") ? TensorScope.Unpooled() : default;
        try { r = Measure(preset, settings); }
        finally { Parallelism.MaxThreads = savedThreads; }
        Print(stdout, o.Flag("json"), preset.Name, settings, threads, r);
        return 0;
    }

    sealed record Settings(int Steps, int Warmup, int SampleSteps, int Batch, int Seed, bool Profile);

    /// <summary>Per-step times in ms, peak RSS in MiB, gen-2 collections and allocated bytes over the timed training steps.</summary>
    sealed record Result(double[] TrainMs, double[] SampleMs, double PeakRssMb, int Gen2, long AllocatedBytes, long Parameters,
                         OpProfiler.Row[]? TrainProfile = null, OpProfiler.Row[]? SampleProfile = null);

    static Result Measure(ModelPreset preset, Settings s)
    {
        var config = preset.Model;
        var root = new Rng((ulong)s.Seed);
        var model = new UNetModel(config.ToUNetConfig(), root.Fork());
        var dataRng = root.Fork();
        var timestepRng = root.Fork();
        var noiseRng = root.Fork();
        var dropoutRng = root.Fork();

        var flat = model.PackParameters();
        var flatParam = Tensor.Wrap(flat.Values, flat.Values.Length);
        flatParam.Grad = Tensor.Wrap(flat.Grads, flat.Grads.Length);
        var optimizer = new AdamW([flatParam], new AdamWConfig(Lr: Lr, WeightDecay: WeightDecay));
        var diffusion = DiffusionFactory.Create(config.ToDiffusionConfig());
        var sampler = ScheduleSampler.Create("uniform", diffusion);

        int B = s.Batch, C = config.InChannels, S = config.ImageSize;
        var images = new float[B * C * S * S];
        dataRng.FillUniform(images, -1f, 1f);
        var x0 = Tensor.Wrap(images, B, C, S, S);                              // (B, C, S, S), a fixed batch in [-1, 1]
        int[]? classes = null;
        if (config.ClassCount is int k)
        {
            classes = new int[B];
            for (int i = 0; i < B; i++) classes[i] = dataRng.NextInt(k);
        }
        DiffusionModel net = (x, ts) => model.Forward(x, ts, classes, dropoutRng);

        long optimizerTicks = 0;
        void TrainStep()
        {
            using var scope = TensorScope.Begin();                             // the step's activations go back to the pool
            var (t, _) = sampler.Sample(B, timestepRng);                       // uniform: every weight is 1
            if (OpProfiler.IsRunning) OpProfiler.Mark();
            var loss = diffusion.TrainingLosses(net, x0, t, noiseRng).Loss.Mean();
            loss.Backward();
            long start = Stopwatch.GetTimestamp();
            optimizer.Step();
            model.ZeroGrad();
            optimizerTicks += Stopwatch.GetTimestamp() - start;
        }

        var noise = new float[B * C * S * S];
        dataRng.FillNormal(noise);
        var xT = Tensor.Wrap(noise, B, C, S, S);
        void SampleStep()
        {
            var t = new int[B];
            for (int i = 0; i < B; i++) t[i] = timestepRng.NextInt(diffusion.NumTimesteps);
            using var scope = TensorScope.Begin();
            using (Tensor.NoGrad()) model.Forward(xT, diffusion.ModelTimesteps(t), classes);
        }

        model.Train();
        for (int i = 0; i < s.Warmup; i++) TrainStep();
        var trainMs = new double[s.Steps];
        GC.Collect();
        int gen2Before = GC.CollectionCount(2);
        long allocBefore = GC.GetTotalAllocatedBytes(precise: true);
        if (s.Profile) OpProfiler.Start();
        optimizerTicks = 0;
        for (int i = 0; i < s.Steps; i++) trainMs[i] = Time(TrainStep);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocBefore;
        int gen2 = GC.CollectionCount(2) - gen2Before;
        OpProfiler.Row[]? trainProfile = null;
        if (s.Profile)
            trainProfile = [.. OpProfiler.Stop(), new OpProfiler.Row("(AdamW step + zero-grad)", optimizerTicks * 1000.0 / Stopwatch.Frequency, s.Steps, 0, 0)];

        model.Eval();
        for (int i = 0; i < s.Warmup; i++) SampleStep();
        var sampleMs = new double[s.SampleSteps];
        if (s.Profile) OpProfiler.Start();
        for (int i = 0; i < s.SampleSteps; i++) sampleMs[i] = Time(() => { if (OpProfiler.IsRunning) OpProfiler.Mark(); SampleStep(); });
        var sampleProfile = s.Profile ? OpProfiler.Stop() : null;
        return new Result(trainMs, sampleMs, PeakRssMb(), gen2, allocated, model.ParameterCount(), trainProfile, sampleProfile);
    }

    static double Time(Action step)
    {
        long start = Stopwatch.GetTimestamp();
        step();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>The process's peak resident set (VmHWM on Linux, the peak working set elsewhere), MiB.</summary>
    internal static double PeakRssMb()
    {
        const string status = "/proc/self/status";
        if (File.Exists(status))
            foreach (var line in File.ReadLines(status))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    var kb = line["VmHWM:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) / 1024.0;
                }
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64 / (1024.0 * 1024.0);
    }

    static void Print(TextWriter output, bool json, string preset, Settings s, int threads, Result r)
    {
        static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        double gen2Per100 = r.Gen2 * 100.0 / s.Steps;
        double allocMbPerStep = r.AllocatedBytes / (1024.0 * 1024.0) / s.Steps;
        var (train, sample) = (Stats.Of(r.TrainMs), Stats.Of(r.SampleMs));
        if (json)
        {
            string Timing(string name, Stats st) =>
                $"{{\"name\": \"{name}\", \"value\": {F(st.Median)}, \"unit\": \"ms\", \"preset\": \"{preset}\", \"min\": {F(st.Min)}, \"max\": {F(st.Max)}, \"samples\": {st.Count}}}";
            string Value(string name, double v, string unit) =>
                $"{{\"name\": \"{name}\", \"value\": {F(v)}, \"unit\": \"{unit}\", \"preset\": \"{preset}\"}}";
            output.WriteLine(Timing("train_step_ms", train));
            output.WriteLine(Timing("sample_step_ms", sample));
            output.WriteLine(Value("peak_rss_mb", r.PeakRssMb, "MB"));
            output.WriteLine(Value("gen2_per_100_steps", gen2Per100, "count"));
            output.WriteLine(Value("alloc_mb_per_step", allocMbPerStep, "MB"));
            return;
        }
        output.WriteLine($"bench train --preset {preset}: {r.Parameters:N0} parameters, batch {s.Batch}, {threads} threads, " +
                         $"{s.Warmup} warm-up + {s.Steps} training steps, {s.SampleSteps} sampling steps");
        output.WriteLine($"{"measure",-20} {"median",10} {"min",10} {"max",10}  unit");
        output.WriteLine($"{"train_step_ms",-20} {F(train.Median),10} {F(train.Min),10} {F(train.Max),10}  ms");
        output.WriteLine($"{"sample_step_ms",-20} {F(sample.Median),10} {F(sample.Min),10} {F(sample.Max),10}  ms");
        output.WriteLine($"{"peak_rss_mb",-20} {F(r.PeakRssMb),10} {"",10} {"",10}  MB");
        output.WriteLine($"{"gen2_per_100_steps",-20} {F(gen2Per100),10} {"",10} {"",10}  count");
        output.WriteLine($"{"alloc_mb_per_step",-20} {F(allocMbPerStep),10} {"",10} {"",10}  MB");
        if (r.TrainProfile is { } tp) PrintProfile(output, "training step", tp, s.Steps, train.Median);
        if (r.SampleProfile is { } sp) PrintProfile(output, "sampling step", sp, s.SampleSteps, sample.Median);
    }

    /// <summary>ms per step by op (forward time is the gap since the previous op, see OpProfiler), largest first.</summary>
    static void PrintProfile(TextWriter output, string what, OpProfiler.Row[] rows, int steps, double medianMs)
    {
        static string F(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
        output.WriteLine();
        output.WriteLine($"{what}: ms per step by op (median step {F(medianMs)} ms)");
        output.WriteLine($"{"op",-28} {"forward",9} {"calls",6} {"backward",9} {"calls",6} {"total",9} {"share",6}");
        double all = rows.Sum(r => r.ForwardMs + r.BackwardMs) / steps;
        foreach (var r in rows)
        {
            double f = r.ForwardMs / steps, b = r.BackwardMs / steps;
            output.WriteLine($"{r.Op,-28} {F(f),9} {r.ForwardCalls / steps,6} {F(b),9} {r.BackwardCalls / steps,6} {F(f + b),9} {100 * (f + b) / all,5:0.0}%");
        }
        output.WriteLine($"{"(sum)",-28} {"",9} {"",6} {"",9} {"",6} {F(all),9}");
    }

    readonly record struct Stats(double Median, double Min, double Max, int Count)
    {
        public static Stats Of(double[] ms)
        {
            var sorted = ms.Order().ToArray();
            int n = sorted.Length;
            double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
            return new Stats(median, sorted[0], sorted[^1], n);
        }
    }
}

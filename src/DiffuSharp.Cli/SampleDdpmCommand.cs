// diffusharp sample --model DIR where DIR is a diffusers DDPMPipeline folder (model_index.json, unet/ a UNet2DModel,
// scheduler/; what `train --unet-preset/--unet-config` writes): draws N images with diffusers' DDPMPipeline loop
// (Pipelines/DdpmPipeline.cs) and any of our schedulers built from the folder's scheduler config (--sampler ddpm
// is the folder's own DDPMScheduler, ddim, dpm++2m, euler_a, … diffusers' from_config of it). x_T from --seed or
// --noise FILE; a stochastic scheduler's per-step noise from the seed or --step-noise FILE ((S, N, C, H, W): step i
// of sample j uses [i, j]), so a run can be replayed against diffusers (scripts/compare_ddpm_pipeline.py).
using System.Globalization;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Diffusion;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Cli;

public static class SampleDdpmCommand
{
    const string Name = "sample";

    static readonly OptionSpec[] Options =
    [
        new("model", "a diffusers DDPMPipeline folder (model_index.json, unet/, scheduler/)", Value: "DIR"),
        new("n", "number of samples", "16", Value: "N"),
        new("batch", "samples per forward pass", "16", Value: "B"),
        new("steps", "inference steps (set_timesteps)", "50", Value: "S"),
        new("sampler", "ddpm (the folder's DDPMScheduler) | ddim | pndm lms euler euler_a heun kdpm2 kdpm2_a dpm++2m dpm++2m_sde dpm++3m dpm_single deis unipc (from_config of the folder's scheduler)", "ddim", Value: "NAME"),
        new("karras", "Karras sigmas (σ-based and DPM-Solver/DEIS/UniPC schedulers)", IsFlag: true),
        new("eta", "DDIM eta (--sampler ddim only)", "0", Value: "E"),
        new("class", "class label 0..k−1 for every sample, or 'balanced' (UNets with num_class_embeds)", Value: "LABEL"),
        new("seed", "seed of x_T and of the step noise", "0", Value: "N"),
        new("noise", "x_T from FILE (.npy or .safetensors, float32 N×C×H×W)", Value: "FILE"),
        new("step_noise", "per-step noise of stochastic samplers from FILE (.npy or .safetensors, float32 S×N×C×H×W)", Value: "FILE"),
        new("save-npy", "also write the samples as .npy (float32 N×C×H×W in the model's range, [-1, 1])", Value: "FILE"),
        new("out", "grid of the samples: .png or .jpg", "samples.png", Value: "FILE"),
        new("help", "show this help", IsFlag: true),
    ];

    /// <summary>True when the args' --model is a DDPMPipeline folder.</summary>
    public static bool Handles(string[] args)
    {
        for (int i = 0; i + 1 < args.Length; i++)
            if (args[i] == "--model") return DdpmPipelineFolder.IsDdpmPipeline(args[i + 1]);
        var eq = args.FirstOrDefault(a => a.StartsWith("--model=", StringComparison.Ordinal));
        return eq is not null && DdpmPipelineFolder.IsDdpmPipeline(eq["--model=".Length..]);
    }

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Samples images from a diffusers DDPMPipeline folder.", Options)); return 0; }
        SampleChecks.Outputs(o);
        int steps = o.Int("steps", min: 1), batch = o.Int("batch", min: 1);
        double eta = o.Double("eta", min: 0);
        string samplerName = o.Required("sampler");
        if (eta != 0 && samplerName != "ddim") throw new CliException($"{Name}: --eta applies to --sampler ddim only, not {samplerName}");
        CliModel.CheckSamplerName(Name, samplerName);
        ulong seed = ulong.TryParse(o.Required("seed"), NumberStyles.None, CultureInfo.InvariantCulture, out var sd) ? sd
            : throw new CliException($"{Name}: --seed expects a non-negative integer, got '{o.Required("seed")}'");
        string folder = o.Required("model");
        var (unet, schedulerConfig) = DdpmPipelineFolder.Load(folder);
        var scheduler = SchedulerFactory.Create(samplerName, schedulerConfig, o.Flag("karras"), eta);
        if (steps > scheduler.Config.NumTrainTimesteps) throw new CliException($"{Name}: --steps {steps} is more than the scheduler's num_train_timesteps {scheduler.Config.NumTrainTimesteps}");
        scheduler.SetTimesteps(steps);                  // the timesteps (Heun and KDPM2 call the model twice per step)
        var c = unet.Config;
        int C = c.InChannels, S = c.SampleSize ?? throw new CliException($"{Name}: {folder}/unet/config.json has no sample_size; the image size is unknown");
        int n = o.Int("n", min: 1), len = C * S * S;
        SampleChecks.Sizes("--n", n, C, S, S, false);
        float[]? noise = null;
        if (o.String("noise") is { } noisePath)
        {
            (var shape, noise) = SampleCommand.ReadNoise(noisePath);
            SampleChecks.Noise(noisePath, shape, noise);
            if (shape.Length != 4 || shape[1] != C || shape[2] != S || shape[3] != S)
                throw new CliException($"{Name}: --noise {noisePath} has shape ({string.Join(", ", shape)}), the model needs (N, {C}, {S}, {S})");
            n = shape[0];
        }
        float[]? stepNoise = null;
        if (o.String("step_noise") is { } stepPath)
        {
            (var shape, stepNoise) = SampleCommand.ReadNoise(stepPath);
            SampleChecks.Noise(stepPath, shape, stepNoise);
            if (shape.Length != 5 || shape[0] < scheduler.Timesteps.Count || shape[1] != n || shape[2] != C || shape[3] != S || shape[4] != S)
                throw new CliException($"{Name}: --step-noise {stepPath} has shape ({string.Join(", ", shape)}); {steps} steps of {samplerName} need ({scheduler.Timesteps.Count}, {n}, {C}, {S}, {S})");
        }
        int[]? labels = Labels(o, c.NumClassEmbeds, n, folder);

        var rng = new Rng(seed);
        var samples = new float[n * len];
        using (var bar = ProgressBar.Start(Name, (long)((n + batch - 1) / batch) * scheduler.Timesteps.Count))
            for (int start = 0; start < n; start += batch)
            {
                int b = Math.Min(batch, n - start);
                var x = noise is null ? Tensor.RandN([b, C, S, S], rng) : Tensor.FromArray(noise.AsSpan(start * len, b * len).ToArray(), b, C, S, S);
                Func<int, NoiseSource> draw = stepNoise is null ? _ => rng : i => StepSlice(stepNoise, i, n, start, b, C, S);
                var result = DdpmPipeline.Sample(unet, scheduler, x, steps, draw, labels?.AsSpan(start, b).ToArray(), _ => bar.Advance());
                result.ToArray().CopyTo(samples.AsSpan(start * len));
            }
        string outPath = o.Required("out");
        ImageFile.Write(outPath, ImageGrid.Make(samples, n, C, S, S));
        if (o.String("save-npy") is { } npy) Npy.WriteFloat32(npy, [n, C, S, S], samples);
        stdout.WriteLine($"wrote {n} samples to {outPath} ({samplerName}, {steps} steps)");
        return 0;
    }

    static Tensor StepSlice(float[] all, int step, int n, int start, int b, int c, int s)
    {
        int len = c * s * s;
        int at = checked((step * n + start) * len);
        return Tensor.FromArray(all.AsSpan(at, b * len).ToArray(), b, c, s, s);
    }

    static int[]? Labels(ParsedOptions o, int? classes, int n, string folder)
    {
        string? spec = o.String("class");
        if (classes is not int k)
        {
            if (spec is not null) throw new CliException($"{Name}: --class given, but the UNet has no num_class_embeds");
            return null;
        }
        if (spec is null or "balanced") return Enumerable.Range(0, n).Select(i => i % k).ToArray();
        return Enumerable.Repeat(ClassLabels.Parse(Name, spec, k, Models.ClassNames.For(folder, k)), n).ToArray();
    }
}

// diffusharp sample: loads a SPEC.md model folder and draws N images, in batches of --batch, with improved-diffusion's
// DDIM (eta) or ancestral DDPM over a respaced schedule, or with any of diffusers' schedulers (--sampler dpm++2m,
// euler_a, unipc, ...; --karras; --spacing) over --steps timesteps of the model's own schedule. The respacing: --steps N (N evenly spaced timesteps, improved-diffusion's
// section spacing "N"), else --respacing STR, else model.json's timestep_respacing (so a model trained with
// improved-diffusion samples as its ddim_sample_loop / p_sample_loop would), else 50 steps. --guidance W samples a
// model trained with a null label with classifier-free guidance (one batched 2B forward per step). x_T comes from
// --seed, or from --noise FILE (.npy / .safetensors, float32 N×C×H×W), which makes a DDIM (eta = 0) run a pure
// function of model and noise. Writes a PNG grid, optionally the samples as .npy (N×C×H×W in [-1, 1]) and a trajectory strip
// (rows = the first samples, columns = x_t at evenly spaced steps, ending at x_0).
using System.Globalization;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Diffusion;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Cli;

public static class SampleCommand
{
    /// <summary>The shipped model sample draws from when no --model is given (models/fashion-mnist).</summary>
    public const string ShippedModel = ShippedModels.Default;

    static readonly OptionSpec[] Options =
    [
        new("model", "model folder (model.safetensors + model.json); default: the repository's models/fashion-mnist, or with --guidance models/fashion-mnist-cfg (the same model fine-tuned with a null label)", Value: "DIR"),
        new("n", "number of samples", "16", Value: "N"),
        new("batch", "samples per forward pass", "16", Value: "B"),
        new("steps", "sampling steps, evenly spaced over the trained T; overrides --respacing and model.json (no step flag: model.json's timestep_respacing, or 50 steps when it has none, as for the shipped model)", Value: "S"),
        new("respacing", "improved-diffusion timestep respacing: \"ddimN\" (stride T/N), \"N\", or section counts \"10,15,20\"", Value: "STR"),
        new("guidance", "classifier-free guidance scale W: ε_u + W·(ε_c − ε_u); 1 = none, 0 = unconditional (models trained with --class-dropout-prob; without --model, models/fashion-mnist-cfg)", Value: "W"),
        new("sampler", "ddim | ddpm (improved-diffusion's own loops) | a diffusers scheduler: pndm lms euler euler_a heun kdpm2 kdpm2_a dpm++2m dpm++2m_sde dpm++3m dpm_single deis unipc (also sd-webui names, e.g. \"DPM++ 2M Karras\"); the list below shows their timesteps", "ddim", Value: "NAME"),
        new("karras", "Karras sigmas (σ-based and DPM-Solver/DEIS/UniPC schedulers)", IsFlag: true),
        new("spacing", "timestep spacing of a diffusers scheduler: linspace | leading | trailing (default: the class's own)", Value: "S"),
        new("eta", "DDIM eta (0 = deterministic; --sampler ddim only)", "0", Value: "E"),
        new("class", "class for every sample: a label (0..k−1), a name (shirt, \"ankle boot\"; Fashion-MNIST's for 10-class models), or 'balanced' (class-conditional models)", Value: "LABEL"),
        new("seed", "seed of the noise", "0", Value: "N"),
        new("noise", "initial noise x_T from FILE (.npy or .safetensors, float32 N×C×H×W)", Value: "FILE"),
        new("save-npy", "also write the samples as .npy (float32 N×C×H×W in [-1, 1])", Value: "FILE"),
        new("out", "grid of the samples: .png or .jpg", "samples.png", Value: "FILE"),
        new("trajectory", "PNG strip of x_t over the steps for the first samples", Value: "FILE"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        if (SampleDdpmCommand.Handles(args)) return SampleDdpmCommand.Run(args, stdout);   // a diffusers DDPMPipeline folder
        var o = OptionParser.Parse("sample", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("sample", "Samples images from a model folder.", Options) + Environment.NewLine + SamplerTable()); return 0; }
        SampleChecks.Outputs(o);
        if (o.Has("steps")) o.Int("steps", min: 1);                      // checked before the model is loaded
        double eta = o.Double("eta");
        if (eta < 0) throw new CliException($"sample: --eta must be non-negative, got {o.Required("eta")}");
        string samplerName = o.Required("sampler");
        bool ownLoop = samplerName is "ddim" or "ddpm";
        CheckSampler(o, samplerName, ownLoop, eta);
        TimestepSpacing? spacing = Spacing(o);
        int batch = o.Int("batch", min: 1);
        ulong seed = ulong.TryParse(o.Required("seed"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var sd)
            ? sd : throw new CliException($"sample: --seed expects a non-negative integer, got '{o.Required("seed")}'");

        string modelDir = ShippedModels.FolderFor("sample", o);
        var (config, model) = ModelFolder.Load(modelDir);
        string respacing = ResolveRespacing(o, config, modelDir);
        Scheduler? scheduler = null;
        int schedulerSteps = 0;
        if (!ownLoop)
        {
            if (o.Has("respacing")) throw new CliException($"sample: --respacing sets improved-diffusion's ddim/ddpm timesteps; --sampler {samplerName} takes --steps N");
            scheduler = ModelSchedulers.Create(config, samplerName, o.Flag("karras"), spacing);
            schedulerSteps = Respacing.SpaceTimesteps(config.DiffusionSteps, respacing).Count();
            scheduler.SetTimesteps(schedulerSteps);
        }
        double? guidance = CliModel.Guidance("sample", o, config, modelDir);
        int C = config.InChannels, H = config.ImageSize, W = config.ImageSize;

        float[]? noise = null;
        int n = o.Int("n", min: 1);
        SampleChecks.Sizes("--n", n, C, H, W, o.Has("trajectory"));
        if (o.String("noise") is { } noisePath)
        {
            (var shape, noise) = ReadNoise(noisePath);
            SampleChecks.Noise(noisePath, shape, noise);
            if (shape.Length != 4 || shape[1] != C || shape[2] != H || shape[3] != W)
                throw new CliException($"sample: --noise {noisePath} has shape ({string.Join(", ", shape)}), the model needs (N, {C}, {H}, {W})");
            if (args.Contains("--n") && shape[0] != n) throw new CliException($"sample: --n {n} but --noise holds {shape[0]} samples");
            n = shape[0];
        }
        int[]? classes = Classes(o, config, modelDir, n);

        var diffusion = DiffusionFactory.Create(config.ToDiffusionConfig() with { TimestepRespacing = respacing });
        int steps = scheduler?.Timesteps.Count ?? diffusion.NumTimesteps;
        var rng = new Rng(seed);
        var samples = new float[n * C * H * W];
        string? trajectoryPath = o.String("trajectory");
        int trajRows = Math.Min(n, 4), trajCols = Math.Max(2, Math.Min(steps, 10));
        var strip = trajectoryPath is null ? null : new float[trajRows * trajCols * C * H * W];
        int len = C * H * W;
        // Strip columns: the loop's step indices i = S−1 … 0 picked evenly, the last column x_0 (i = 0).
        int[] keep = Enumerable.Range(0, trajCols).Select(c => (int)Math.Round((steps - 1) * (1 - c / (double)(trajCols - 1)))).ToArray();

        using var bar = ProgressBar.Start("sample", (long)((n + batch - 1) / batch) * steps);
        for (int start = 0; start < n; start += batch)
        {
            int b = Math.Min(batch, n - start);
            int[]? cls = classes?.AsSpan(start, b).ToArray();
            DiffusionModel fn = guidance is double w
                ? ClassifierFreeGuidance.Create((x, t, c) => model.Forward(x, t, c), cls!, config.NullLabel!.Value, w)
                : (x, t) => model.Forward(x, t, cls);
            Tensor? x0 = noise is null ? null : Tensor.FromArray(noise.AsSpan(start * len, b * len).ToArray(), b, C, H, W);
            if (x0 is null) { x0 = Tensor.RandN([b, C, H, W], rng); }
            int[] shape = [b, C, H, W];
            // one stream of steps for every sampler: (loop index counted down to 0, x after the step)
            var loop = scheduler is not null
                ? SchedulerSampling.SampleProgressive(scheduler, ModelSchedulers.Denoiser(config, scheduler, fn), x0, schedulerSteps, rng, ModelSchedulers.TimestepScale(config))
                    .Select(st => new SampleStep(steps - 1 - st.Index, st.Sample, st.PredOriginalSample ?? st.Sample))
                : samplerName == "ddim"
                ? diffusion.DdimSampleLoopProgressive(fn, shape, rng, x0, eta)
                : diffusion.PSampleLoopProgressive(fn, shape, rng, x0);
            Tensor? last = null;
            foreach (var step in loop)
            {
                bar.Advance();
                last = step.Sample;
                int col = strip is null || start != 0 ? -1 : Array.IndexOf(keep, step.Timestep);
                if (col < 0) continue;
                var data = step.Sample.ToArray();
                for (int r = 0; r < Math.Min(trajRows, b); r++)
                    data.AsSpan(r * len, len).CopyTo(strip!.AsSpan((r * trajCols + col) * len, len));
            }
            last!.ToArray().CopyTo(samples.AsSpan(start * len));
        }
        bar.Dispose();                                        // the bar's last state drawn before any line of ours

        string outPath = o.Required("out");
        ImageFile.Write(outPath, ImageGrid.Make(samples, n, C, H, W));
        if (o.String("save-npy") is { } npy) Npy.WriteFloat32(npy, [n, C, H, W], samples);
        if (trajectoryPath is not null) ImageFile.Write(trajectoryPath, ImageGrid.Make(strip!, trajRows * trajCols, C, H, W, columns: trajCols));
        stdout.WriteLine($"wrote {n} samples to {outPath}");
        return 0;
    }

    /// <summary>The respacing string: --steps N, --respacing STR, model.json's timestep_respacing, or "50".</summary>
    static string ResolveRespacing(ParsedOptions o, ModelConfig config, string modelDir)
    {
        int T = config.DiffusionSteps;
        if (o.Has("steps"))
        {
            int steps = o.Int("steps", min: 1);
            if (steps > T) throw new CliException($"sample: --steps {steps} is more than the model's diffusion_steps {T}");
            return steps.ToString(CultureInfo.InvariantCulture);
        }
        var (spec, source) = o.String("respacing") is { } r ? (r, "--respacing")
            : config.TimestepRespacing.Length > 0 ? (config.TimestepRespacing, $"{Path.Combine(modelDir, ModelFolder.ConfigFile)}: timestep_respacing")
            : (Math.Min(50, T).ToString(CultureInfo.InvariantCulture), "the default");
        try { Respacing.SpaceTimesteps(T, spec); }
        catch (ArgumentException e)
        {
            // The library's message ends with ' (Parameter ...)': keep only the sentence.
            string why = e.Message.Split(" (Parameter", 2)[0];
            throw new CliException($"sample: {source} \"{spec}\" is not a valid respacing for diffusion_steps {T}: {why}");
        }
        return spec;
    }

    /// <summary>Refuses an unknown sampler and options that do not apply to the chosen one, before any work.</summary>
    static void CheckSampler(ParsedOptions o, string name, bool ownLoop, double eta)
    {
        if (ownLoop)
        {
            if (o.Flag("karras")) throw new CliException($"sample: --karras applies to the diffusers schedulers, not --sampler {name} (improved-diffusion's own loop)");
            if (o.Has("spacing")) throw new CliException($"sample: --spacing applies to the diffusers schedulers; --sampler {name} takes --respacing");
            if (name == "ddpm" && eta != 0) throw new CliException("sample: --eta applies to --sampler ddim only");
            return;
        }
        if (eta != 0) throw new CliException($"sample: --eta applies to --sampler ddim only, not {name}");
        CliModel.CheckSamplerName("sample", name);
    }

    static TimestepSpacing? Spacing(ParsedOptions o) => o.String("spacing") switch
    {
        null => null,
        "linspace" => TimestepSpacing.Linspace,
        "leading" => TimestepSpacing.Leading,
        "trailing" => TimestepSpacing.Trailing,
        var v => throw new CliException($"sample: --spacing must be linspace, leading or trailing, got '{v}'"),
    };

    /// <summary>The help's table: every sampler, its sd-webui name, and the timesteps --steps 10 gives on a model with
    /// T = 1000 (its class's default spacing).</summary>
    static string SamplerTable()
    {
        var lines = new List<string> { "samplers (--steps 10 on a model with T = 1000: the timesteps the model is called at, first to last):" };
        var model = new ModelConfig { DiffusionSteps = 1000, NoiseSchedule = "cosine" };
        foreach (var s in SchedulerFactory.Samplers)
        {
            string ts;
            if (s.CliName is "ddim" or "ddpm")
                ts = string.Join(" ", Respacing.SpaceTimesteps(1000, "10").OrderDescending()) + "  (improved-diffusion's spacing \"10\"; --respacing ddim10 gives 900 … 0)";
            else
            {
                var sch = ModelSchedulers.Create(model, s.CliName);
                sch.SetTimesteps(10);
                ts = string.Join(" ", sch.Timesteps.Select(t => Math.Round(t, 1).ToString(CultureInfo.InvariantCulture)))
                    + $"  ({sch.Config.TimestepSpacing.ToString().ToLowerInvariant()})";
            }
            lines.Add($"  {s.CliName,-12} {s.DisplayName,-13} {ts}");
        }
        return string.Join(Environment.NewLine, lines);
    }

    static int[]? Classes(ParsedOptions o, ModelConfig config, string modelDir, int n)
    {
        string? spec = o.String("class");
        if (config.ClassCount is not int k)
        {
            if (spec is not null) throw new CliException("sample: --class given, but the model is not class-conditional (class_cond false)");
            return null;
        }
        if (spec is null or "balanced") return Enumerable.Range(0, n).Select(i => i % k).ToArray();
        return Enumerable.Repeat(ClassLabels.Parse("sample", spec, k, ClassLabels.Names(modelDir, config)), n).ToArray();
    }

    internal static (int[] Shape, float[] Data) ReadNoise(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"noise file not found: {path}", path);
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return Npy.ReadFloat32(path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var f = SafeTensorsFile.Open(path);
            string name = f.Names.Count == 1 ? f.Names[0]
                : f.Contains("noise") ? "noise" : throw new InvalidDataException($"{path}: holds {f.Names.Count} tensors; expected one, or one named \"noise\"");
            return (Array.ConvertAll(f.Info(name).Shape, d => checked((int)d)), f.ReadFloat32(name));
        }
        throw new CliException($"sample: --noise must be a .npy or .safetensors file, got '{path}'");
    }
}

// Runs a job on the engine, through the same library calls as the command line: pixel models through
// ModelSchedulers + SchedulerSampling (any --sampler of `diffusharp sample`, classifier-free guidance for models with a
// null label; a diffusers DDPMPipeline folder's UNet2DModel with any scheduler made from its folder's scheduler config,
// as diffusers' DDPMPipeline with a swapped scheduler), pipelines through StableDiffusionPipeline (txt2img, img2img and
// inpaint, each with any of the folder's ControlNets by name, loaded on first use). The
// preview after each step is the predicted x0: for pixel models the scheduler's pred_original_sample (every step), for
// pipelines the VAE decode of the step's predicted x0 latents (every step while the latents are at most 32×32, else
// every 5th: a decode of SD's 64×64 latents costs about as much as a UNet step). One model stays loaded; asking for another
// replaces it. Only the job runner's thread calls Run.
using DiffuSharp.Diffusion;
using DiffuSharp.Imaging;
using DiffuSharp.Models;
using DiffuSharp.NN;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Server;

public sealed class GenerationEngine
{
    string? _loadedName;
    PixelNet? _pixel;
    (StableDiffusionPipeline Pipe, SchedulerConfig Folder, Dictionary<string, ControlNetModel> Nets)? _pipeline;

    /// <summary>Runs <paramref name="job"/>; finished images are appended to <paramref name="images"/> as they come,
    /// so an interrupted job keeps them. Throws OperationCanceledException when the job is cancelled.</summary>
    public JobResult Run(Job job, List<JobImage> images)
        => job.Model.Kind == ModelKind.Pixel ? RunPixel(job, images) : RunPipeline(job, images);

    JobResult RunPixel(Job job, List<JobImage> images)
    {
        var s = job.Spec;
        var ct = job.Cancellation;
        var net = LoadPixel(job.Model);
        if (s.Steps > job.Model.TrainSteps) throw new ArgumentException($"steps {s.Steps} is more than {job.Model.Name}'s diffusion_steps {job.Model.TrainSteps}");
        int C = job.Model.Channels, H = job.Model.Height, W = job.Model.Width, len = C * H * W;
        int? label = GenerationSpec.ClassLabel(job.Model, s.Prompt);
        var warnings = new List<string>();
        bool guided = job.Model.Guidance && s.CfgScale != 1;
        if (!job.Model.Guidance && s.CfgScale != 1) warnings.Add($"cfg_scale {s.CfgScale} ignored: {job.Model.Name} was trained without a null label");
        double cfg = guided ? s.CfgScale : 1;
        string sampler = DisplayName(s.Sampler!);
        byte[]? trajectory = null;
        for (int batch = 0; batch < s.NIter; batch++)
        {
            int B = s.BatchSize, first = batch * B;
            var noise = Noise(s, first, B, [1, C, H, W]);
            int[]? labels = job.Model.ClassNames.Count == 0 ? null
                : Enumerable.Range(first, B).Select(i => label ?? i % job.Model.ClassNames.Count).ToArray();
            DiffusionModel fn = guided
                ? ClassifierFreeGuidance.Create((x, t, c) => net.Forward(x, t, c), labels!, net.NullLabel!.Value, cfg)
                : (x, t) => net.Forward(x, t, labels);
            var scheduler = net.Scheduler(s.Sampler!);
            scheduler.SetTimesteps(s.Steps);
            int steps = scheduler.Timesteps.Count;
            var frames = s.Trajectory && batch == 0 ? new List<(float[] Xt, float[] X0)>() : null;
            int[] keep = Enumerable.Range(0, Math.Min(10, steps)).Select(c => (int)Math.Round((steps - 1) * c / Math.Max(1.0, Math.Min(10, steps) - 1))).ToArray();
            float[]? last = null;
            foreach (var st in SchedulerSampling.SampleProgressive(scheduler, fn, noise, s.Steps, new Rng(StepSeed(s.Seed + first)), net.TimestepScale))
            {
                ct.ThrowIfCancellationRequested();
                var x0 = (st.PredOriginalSample ?? st.Sample).ToArray();
                last = st.Sample.ToArray();
                if (frames is not null && keep.Contains(st.Index)) frames.Add((last[..len], x0[..len]));
                job.Report(batch, st.Index + 1, steps, Png.Encode(ImageGrid.Make(x0, B, C, H, W)));
            }
            for (int j = 0; j < B; j++)
            {
                long seed = s.Seed + first + j;
                string prompt = labels is null ? "" : job.Model.ClassNames[labels[j]];
                string extra = s.Seed2 is long s2 ? $"Seed2: {s2 + first + j}, Mix: {s.Mix.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "";
                string p = GenerationParameters.Format(prompt, null, s.Steps, sampler, cfg, seed, W, H, job.Model.Name, extra);
                images.Add(Image(job, first + j, last!.AsSpan(j * len, len), C, H, W, p, seed));
            }
            if (frames is not null)
            {
                var strip = new float[2 * frames.Count * len];
                for (int c = 0; c < frames.Count; c++)
                {
                    frames[c].Xt.CopyTo(strip, c * len);
                    frames[c].X0.CopyTo(strip, (frames.Count + c) * len);
                }
                trajectory = Png.Encode(ImageGrid.Make(strip, 2 * frames.Count, C, H, W, columns: frames.Count));
            }
        }
        return new JobResult([.. images], trajectory, warnings, null);
    }

    JobResult RunPipeline(Job job, List<JobImage> images)
    {
        var s = job.Spec;
        var ct = job.Cancellation;
        var (basePipe, folderConfig, nets) = LoadPipeline(job.Model);
        var pipe = basePipe.WithScheduler(SchedulerFactory.Create(SchedulerFactory.ConfigFor(s.Sampler!, folderConfig)));
        pipe.Scheduler.SetTimesteps(s.Steps);
        int total = pipe.Scheduler.Timesteps.Count;
        if (s.Mode != GenerationMode.Txt2Img) total = Math.Max(1, (int)Math.Ceiling(total * s.DenoisingStrength));
        int f = pipe.VaeScaleFactor, h = s.Height / f, w = s.Width / f;
        int every = h * w <= 32 * 32 ? 1 : 5;
        string sampler = DisplayName(s.Sampler!);
        var warnings = new List<string>();
        int c = pipe.Vae.Config.OutChannels;                                   // 3, or 1 for a gray VAE
        Tensor? init = s.InitImage is null ? null : Tensor.FromArray(ImageGrid.ToFloat(s.InitImage, c), 1, c, s.Height, s.Width);
        for (int batch = 0; batch < s.NIter; batch++)
        {
            int B = s.BatchSize, first = batch * B, b = batch;
            var rng = new Rng(StepSeed(s.Seed + first));
            void Callback(int i, double t, Tensor latents)
            {
                ct.ThrowIfCancellationRequested();
                job.Report(b, Math.Min(i + 1, total), total, null);
            }
            void Preview(int i, double t, Tensor x0)                             // the step's predicted x0 (scaled latents)
            {
                if (i % every != 0 && i + 1 < total) return;
                var rgb = pipe.Decode(x0).ToArray();                               // (B, C, H, W) in [0, 1]
                for (int k = 0; k < rgb.Length; k++) rgb[k] = rgb[k] * 2 - 1;
                job.Report(b, Math.Min(i + 1, total), total, Png.Encode(ImageGrid.Make(rgb, B, c, s.Height, s.Width)));
            }
            List<ControlNetInput>? control = s.Control is null ? null
                : [.. s.Control.Select(u => new ControlNetInput(Net(job.Model, nets, u.Name!), ControlTensor(u.Image), u.Scale, u.Start, u.End))];
            PipelineOutput output = s.Mode switch
            {
                GenerationMode.Txt2Img => pipe.Txt2Img(new Txt2ImgRequest(s.Prompt, s.NegativePrompt, s.CfgScale, s.Steps, s.Width, s.Height, B,
                    Noise(s, first, B, [1, pipe.UNet.Config.InChannels, h, w]), control), rng, Callback, ct, Preview),
                GenerationMode.Img2Img => pipe.Img2Img(new Img2ImgRequest(s.Prompt, init!, s.DenoisingStrength, s.NegativePrompt, s.CfgScale, s.Steps, B,
                    Control: control), rng, Callback, ct, Preview),
                _ => pipe.Inpaint(new InpaintRequest(s.Prompt, init!, MaskTensor(s.Mask!), s.DenoisingStrength, s.NegativePrompt, s.CfgScale, s.Steps, B,
                    Control: control), rng, Callback, ct, Preview),
            };
            ct.ThrowIfCancellationRequested();
            foreach (var warning in output.Warnings) if (!warnings.Contains(warning)) warnings.Add(warning);
            var rgbOut = output.Image.Contiguous().ToArray();
            for (int k = 0; k < rgbOut.Length; k++) rgbOut[k] = rgbOut[k] * 2 - 1;
            int len = c * s.Height * s.Width;
            for (int j = 0; j < B; j++)
            {
                long seed = s.Seed + first + j;
                string strength = s.Mode == GenerationMode.Txt2Img ? ""
                    : $"Denoising strength: {s.DenoisingStrength.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
                string extra = string.Join(", ", new[] { strength, s.Control is null ? "" : ControlUnits.Parameters(s.Control) }.Where(x => x.Length > 0));
                string p = GenerationParameters.Format(s.Prompt, s.NegativePrompt, s.Steps, sampler, s.CfgScale, seed, s.Width, s.Height, job.Model.Name, extra);
                images.Add(Image(job, first + j, rgbOut.AsSpan(j * len, len), c, s.Height, s.Width, p, seed));
            }
        }
        return new JobResult([.. images], null, warnings, null);
    }

    /// <summary>x_T for images first … first+B−1: each from its own seed (so a gallery image's seed redraws it alone),
    /// slerped toward seed2's noise for interpolation.</summary>
    static Tensor Noise(GenerationSpec s, int first, int B, int[] one)
    {
        var parts = new Tensor[B];
        for (int j = 0; j < B; j++)
        {
            var a = Tensor.RandN(one, new Rng((ulong)(s.Seed + first + j)));
            if (s.Seed2 is not long s2 || s.Mix == 0) { parts[j] = a; continue; }
            var b = Tensor.RandN(one, new Rng((ulong)(s2 + first + j)));
            parts[j] = s.Mix == 1 ? b : Interpolation.SlerpLatents(a, b, s.Mix);             // the ends exactly: seed's and seed2's images
        }
        return B == 1 ? parts[0] : Tensor.Concat(parts, 0);
    }

    /// <summary>The seed of the step noise (ancestral samplers), a stream apart from the x_T draws.</summary>
    static ulong StepSeed(long seed) => unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E019UL);

    static Tensor ControlTensor(Image8 image)
    {
        var x = ImageGrid.ToFloat(image, 3);                                 // [-1, 1]
        for (int i = 0; i < x.Length; i++) x[i] = (x[i] + 1) / 2;            // ControlNet images are in [0, 1]
        return Tensor.FromArray(x, 1, 3, image.Height, image.Width);
    }

    static Tensor MaskTensor(Image8 mask)
    {
        var x = ImageGrid.ToFloat(mask, 1);
        for (int i = 0; i < x.Length; i++) x[i] = (x[i] + 1) / 2;            // white (1) = repaint
        return Tensor.FromArray(x, 1, 1, mask.Height, mask.Width);
    }

    static JobImage Image(Job job, int index, ReadOnlySpan<float> pixels, int C, int H, int W, string parameters, long seed)
    {
        var png = Png.Encode(ImageGrid.Make(pixels, 1, C, H, W, padding: 0), text: [("parameters", parameters)]);
        return new JobImage($"{job.Id}-{index}", job.Model.Name, png, parameters, seed, DateTime.UtcNow);
    }

    /// <summary>sd-webui's name of a sampler ("dpm++2m" → "DPM++ 2M"); other names as given.</summary>
    public static string DisplayName(string sampler)
    {
        var match = SchedulerFactory.Samplers.FirstOrDefault(x => string.Equals(x.CliName, sampler, StringComparison.OrdinalIgnoreCase));
        return match?.DisplayName ?? sampler;
    }

    /// <summary>A loaded pixel model as a run uses it: the network (x, t, labels) → its output, the scheduler a sampler
    /// name gives for it, the null label (classifier-free guidance) and the factor from scheduler to model timesteps.</summary>
    sealed record PixelNet(Func<Tensor, Tensor, int[]?, Tensor> Forward, Func<string, Scheduler> Scheduler, int? NullLabel, double TimestepScale);

    PixelNet LoadPixel(ModelEntry m)
    {
        if (_loadedName != m.Name || _pixel is null)
        {
            Unload();
            _pixel = m.DiffusersUNet ? LoadDiffusersPixel(m.Folder) : LoadModelFolder(m.Folder);
            _loadedName = m.Name;
        }
        return _pixel;
    }

    static PixelNet LoadModelFolder(string folder)
    {
        var (config, unet) = ModelFolder.Load(folder);
        return new PixelNet((x, t, c) => unet.Forward(x, t, c), sampler => ModelSchedulers.Create(config, sampler), config.NullLabel,
            ModelSchedulers.TimestepScale(config));
    }

    /// <summary>A DDPMPipeline folder: its UNet2DModel, and schedulers configured from its scheduler config (the
    /// training schedule, prediction type and clipping), as diffusers' from_config on the folder's scheduler.</summary>
    static PixelNet LoadDiffusersPixel(string folder)
    {
        var index = ModelIndex.Load(folder);
        var unet = ComponentLoader.LoadUNet2D(index.Components["unet"].Folder);
        unet.Eval();
        var schedule = SchedulerConfig.Load(index.ConfigPath("scheduler"));
        return new PixelNet((x, t, c) => unet.Forward(x, t, c), sampler => SchedulerFactory.Create(SchedulerFactory.ConfigFor(sampler, schedule)), null, 1.0);
    }

    (StableDiffusionPipeline, SchedulerConfig, Dictionary<string, ControlNetModel>) LoadPipeline(ModelEntry m)
    {
        if (_loadedName != m.Name || _pipeline is null)
        {
            Unload();
            var index = ModelIndex.Load(m.Folder);
            var pipe = StableDiffusionPipeline.Load(index);
            _pipeline = (pipe, SchedulerConfig.Load(index.ConfigPath("scheduler")), new Dictionary<string, ControlNetModel>(StringComparer.Ordinal));
            _loadedName = m.Name;
        }
        return _pipeline.Value;
    }

    /// <summary>The loaded model's ControlNet <paramref name="name"/> (a name of its list), loaded on first use and kept
    /// while the model stays loaded.</summary>
    static ControlNetModel Net(ModelEntry m, Dictionary<string, ControlNetModel> loaded, string name)
    {
        if (loaded.TryGetValue(name, out var net)) return net;
        var entry = m.ControlNetList.First(n => n.Name == name);
        net = ComponentLoader.LoadControlNet(entry.Folder);
        net.Eval();
        return loaded[name] = net;
    }

    void Unload() { _pixel = null; _pipeline = null; _loadedName = null; }
}

// Stable Diffusion text-to-image and image-to-image on our own engine, step for step as diffusers 0.27.2's
// StableDiffusionPipeline.__call__ and StableDiffusionImg2ImgPipeline.__call__
// (src/diffusers/pipelines/stable_diffusion/pipeline_stable_diffusion{,_img2img}.py), txt2img also with ControlNets
// as StableDiffusionControlNetPipeline (pipelines/controlnet/pipeline_controlnet.py, guess_mode off): encode the prompt and the
// negative prompt ("" when none), prepare the latents (txt2img: x_T · init_noise_sigma; img2img: the VAE posterior
// sample of the image × scaling_factor, noised to timesteps[t_start]), then the denoising loop with classifier-free
// guidance on the batch [uncond; cond], and decode latents / scaling_factor to (x / 2 + 0.5).clamp(0, 1).
// Deviations: randomness is an explicit Rng (or explicit tensors), never a global generator; guidance_rescale,
// IP-adapters, LoRA scales and the safety checker are not part of this pipeline; the image comes back as
// (B, 3, H, W) float32 in [0, 1] (diffusers' output_type "pt").
using DiffuSharp.Diffusion;
using DiffuSharp.NN;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;

namespace DiffuSharp.Pipelines;

/// <summary>Called after every denoising step with its index, its timestep and the latents (B, 4, h, w).</summary>
public delegate void PipelineStepCallback(int step, double timestep, Tensor latents);

/// <summary>Called after every denoising step with its index, its timestep and the prediction of the clean latents x0
/// (B, 4, h, w) made at that step (<see cref="LatentPreview.PredictedX0"/>), for previews.</summary>
public delegate void PipelinePreviewCallback(int step, double timestep, Tensor predictedX0);

/// <summary>A text-to-image request (diffusers' __call__ arguments).</summary>
/// <param name="Prompt">the prompt</param>
/// <param name="NegativePrompt">what to steer away from; null is diffusers' None, encoded as ""</param>
/// <param name="GuidanceScale">W of ε_u + W(ε_c − ε_u); ≤ 1 turns classifier-free guidance off, as diffusers does</param>
/// <param name="Steps">num_inference_steps</param>
/// <param name="Width">image width in pixels, a multiple of 8</param>
/// <param name="Height">image height in pixels, a multiple of 8</param>
/// <param name="NumImages">num_images_per_prompt</param>
/// <param name="Latents">explicit x_T (NumImages, 4, h, w), unscaled (the pipeline multiplies it by init_noise_sigma);
/// null: drawn from the Rng</param>
/// <param name="Control">ControlNets steering the run (StableDiffusionControlNetPipeline); their residuals are summed</param>
public sealed record Txt2ImgRequest(string Prompt, string? NegativePrompt = null, double GuidanceScale = 7.5, int Steps = 50,
    int Width = 512, int Height = 512, int NumImages = 1, Tensor? Latents = null, IReadOnlyList<ControlNetInput>? Control = null);

/// <summary>One ControlNet of a run (diffusers' StableDiffusionControlNetPipeline arguments for it).</summary>
/// <param name="Net">the ControlNet</param>
/// <param name="Image">the control image (1 or B, 3, H, W) in [0, 1] (diffusers' preprocessing: u8 / 255, not normalized)</param>
/// <param name="Scale">controlnet_conditioning_scale</param>
/// <param name="GuidanceStart">control_guidance_start: the share of the steps before the net starts</param>
/// <param name="GuidanceEnd">control_guidance_end: the share of the steps after which its scale is 0</param>
public sealed record ControlNetInput(ControlNetModel Net, Tensor Image, double Scale = 1.0, double GuidanceStart = 0, double GuidanceEnd = 1);

/// <summary>An image-to-image request.</summary>
/// <param name="Image">the init image (N, 3, H, W) in [-1, 1] (diffusers' preprocessed image); N is 1 or NumImages</param>
/// <param name="Strength">the share of the schedule re-run: the loop runs the last int(Steps · Strength) timesteps</param>
/// <param name="PosteriorNoise">explicit draw for the VAE posterior sample; null: from the Rng</param>
/// <param name="Noise">explicit noise add_noise mixes in; null: from the Rng</param>
/// <param name="Control">ControlNets steering the run (StableDiffusionControlNetImg2ImgPipeline)</param>
public sealed record Img2ImgRequest(string Prompt, Tensor Image, double Strength = 0.8, string? NegativePrompt = null,
    double GuidanceScale = 7.5, int Steps = 50, int NumImages = 1, Tensor? PosteriorNoise = null, Tensor? Noise = null,
    IReadOnlyList<ControlNetInput>? Control = null);

/// <summary>An inpainting request: latent blending for a 4-channel (ordinary) UNet, as sd-webui and diffusers do; the
/// mask and masked-image latents as extra input for a 9-channel inpainting UNet.</summary>
/// <param name="Image">the image (1, 3, H, W) in [-1, 1]</param>
/// <param name="Mask">the mask (1, 1, H, W) in [0, 1]; binarized at 0.5; 1 where the pipeline paints</param>
/// <param name="Strength">1: start from pure noise; below 1: from the image noised to the first timestep run</param>
/// <param name="Draws">explicit random draws in diffusers' order (image posterior: 4 channels or strength &lt; 1; noise;
/// masked-image posterior); null: from the Rng</param>
/// <param name="StepNoise">explicit per-step scheduler noise (one per timestep run); null: from the Rng</param>
/// <param name="Control">ControlNets steering the run (StableDiffusionControlNetInpaintPipeline: the nets see the 4 latent
/// channels, a 9-channel UNet its extra ones)</param>
/// <param name="Noise">explicit noise (NumImages, 4, h, w): x_T at strength 1, else mixed into the image latents; then it
/// is not drawn (nor taken from Draws); null: drawn</param>
public sealed record InpaintRequest(string Prompt, Tensor Image, Tensor Mask, double Strength = 1.0, string? NegativePrompt = null,
    double GuidanceScale = 7.5, int Steps = 50, int NumImages = 1, IReadOnlyList<Tensor>? Draws = null, IReadOnlyList<Tensor>? StepNoise = null,
    IReadOnlyList<ControlNetInput>? Control = null, Tensor? Noise = null);

/// <summary>What a run produced: the prompt embeddings (B, 77, D), the timesteps run, the final latents (B, 4, h, w), the
/// decoded image (B, 3, H, W) in [0, 1], and warnings (a prompt truncated to 77 tokens).</summary>
public sealed record PipelineOutput(Tensor PromptEmbeds, Tensor NegativePromptEmbeds, IReadOnlyList<double> Timesteps,
    Tensor Latents, Tensor Image, IReadOnlyList<string> Warnings);

/// <summary>diffusers' StableDiffusionPipeline and StableDiffusionImg2ImgPipeline: tokenizer, CLIP text encoder, UNet, VAE
/// and a scheduler.</summary>
public sealed class StableDiffusionPipeline
{
    /// <summary>The prompt's tokenizer (CLIP BPE).</summary>
    public ClipTokenizer Tokenizer { get; }
    /// <summary>The CLIP text encoder the UNet is conditioned on.</summary>
    public ClipTextModel TextEncoder { get; }
    /// <summary>The denoising UNet (in latent space).</summary>
    public UNet2DConditionModel UNet { get; }
    /// <summary>The VAE that maps images to latents and back.</summary>
    public AutoencoderKL Vae { get; }
    /// <summary>The sampler: the folder's scheduler, or the one Load's sampler argument named.</summary>
    public Scheduler Scheduler { get; }

    /// <summary>Pixels per latent along each side: 2^(VAE levels − 1), 8 for Stable Diffusion.</summary>
    public int VaeScaleFactor => 1 << (Vae.Config.BlockOutChannels.Length - 1);

    /// <summary>Decode latents larger than one tile tile by tile (diffusers' enable_vae_tiling); null: in one piece.</summary>
    public VaeTiling? VaeTiling { get; init; }

    /// <summary>A pipeline of already-loaded components (the tokenizer, text encoder, UNet, VAE and scheduler must
    /// belong together); <see cref="Load"/> builds one from a folder.</summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae, Scheduler scheduler)
        => (Tokenizer, TextEncoder, UNet, Vae, Scheduler) = (tokenizer, textEncoder, unet, vae, scheduler);

    /// <summary>The same components with another scheduler.</summary>
    public StableDiffusionPipeline WithScheduler(Scheduler scheduler) => new(Tokenizer, TextEncoder, UNet, Vae, scheduler) { VaeTiling = VaeTiling };

    /// <summary>The same components decoding with <paramref name="tiling"/> (null: in one piece).</summary>
    public StableDiffusionPipeline WithVaeTiling(VaeTiling? tiling) => new(Tokenizer, TextEncoder, UNet, Vae, Scheduler) { VaeTiling = tiling };

    /// <summary>Loads every component of a pipeline folder or single-file checkpoint. The scheduler is the folder's
    /// (scheduler_config.json), or <paramref name="sampler"/> (a CLI, sd-webui or diffusers class name) derived from it
    /// as diffusers' from_config does.</summary>
    public static StableDiffusionPipeline Load(IPipelineSource source, string? sampler = null, bool karras = false)
    {
        var tokenizer = ClipTokenizer.FromFolder(source.Index.Require("tokenizer").Folder);
        var textEncoder = ClipTextModel.FromSource(ClipTextConfig.Load(source.ConfigPath("text_encoder")), source.Weights("text_encoder"));
        textEncoder.PackForInference();
        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(source.ConfigPath("unet")), new Rng(0));
        unet.LoadFrom(source.Weights("unet"));
        unet.Eval();
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(source.ConfigPath("vae")), new Rng(0));
        vae.LoadFrom(source.Weights("vae"));
        vae.Eval();
        var folderConfig = SchedulerConfig.Load(source.ConfigPath("scheduler"));
        var config = sampler is null ? folderConfig : SchedulerFactory.ConfigFor(sampler, folderConfig, karras);
        if (sampler is null && karras) config = config with { UseKarrasSigmas = true };
        return new StableDiffusionPipeline(tokenizer, textEncoder, unet, vae, SchedulerFactory.Create(config));
    }

    /// <summary>Text to image. <paramref name="rng"/> draws x_T (unless given) and any scheduler noise.</summary>
    public PipelineOutput Txt2Img(Txt2ImgRequest r, Rng rng, PipelineStepCallback? callback = null, CancellationToken cancellation = default,
        PipelinePreviewCallback? preview = null)
    {
        CheckSize(r.Width, r.Height);
        if (r.NumImages < 1) throw new ArgumentException($"the number of images must be at least 1, got {r.NumImages}");
        using var _ = Tensor.NoGrad();
        // 1. encode the prompt and the negative prompt
        var warnings = new List<string>();
        var (cond, uncond) = EncodePrompt(r.Prompt, r.NegativePrompt, r.NumImages, warnings);
        // 2. timesteps
        Scheduler.SetTimesteps(r.Steps);
        // 3. x_T: (B, 4, h, w) · init_noise_sigma
        int[] shape = [r.NumImages, UNet.Config.InChannels, r.Height / VaeScaleFactor, r.Width / VaeScaleFactor];
        Tensor latents;
        if (r.Latents is null) latents = Tensor.RandN(shape, rng);
        else if (!ShapeUtil.Equal(r.Latents.ShapeSpan, shape))
            throw new ArgumentException($"latents have shape {ShapeUtil.Format(r.Latents.ShapeSpan)}, expected {ShapeUtil.Format(shape)} for {r.NumImages} image(s) of {r.Width}x{r.Height}");
        else latents = r.Latents;
        latents = latents * Scheduler.InitNoiseSigma;
        // 4. denoising loop, 5. decode
        latents = Denoise(latents, [.. Scheduler.Timesteps], cond, uncond, r.GuidanceScale, rng, callback, cancellation, r.Control ?? [], preview: preview);
        return new PipelineOutput(cond, uncond, [.. Scheduler.Timesteps], latents, Decode(latents), warnings);
    }

    /// <summary>Image to image. <paramref name="rng"/> draws what the request does not give: the posterior sample, the
    /// noise, and any scheduler noise, in diffusers' order.</summary>
    public PipelineOutput Img2Img(Img2ImgRequest r, Rng rng, PipelineStepCallback? callback = null, CancellationToken cancellation = default,
        PipelinePreviewCallback? preview = null)
    {
        if (r.Image.Rank != 4 || r.Image.Dim(1) != 3) throw new ArgumentException($"the init image must be (N, 3, H, W), got {ShapeUtil.Format(r.Image.ShapeSpan)}");
        CheckSize(r.Image.Dim(3), r.Image.Dim(2));
        if (r.Strength < 0 || r.Strength > 1) throw new ArgumentException($"strength must lie in [0, 1], got {r.Strength}");
        int batch = r.NumImages;
        if (r.Image.Dim(0) != 1 && r.Image.Dim(0) != batch)
            throw new ArgumentException($"{r.Image.Dim(0)} init images for {batch} output images: give 1 or {batch}");
        using var _ = Tensor.NoGrad();
        // 1. encode the prompt and the negative prompt
        var warnings = new List<string>();
        var (cond, uncond) = EncodePrompt(r.Prompt, r.NegativePrompt, batch, warnings);
        // 2. timesteps: the last int(n · strength) of n; the scheduler starts at t_start (set_begin_index)
        Scheduler.SetTimesteps(r.Steps);
        int initTimestep = Math.Min((int)(r.Steps * r.Strength), r.Steps);
        int tStart = Math.Max(r.Steps - initTimestep, 0) * Scheduler.Order;
        double[] timesteps = [.. Scheduler.Timesteps.Skip(tStart)];
        if (timesteps.Length == 0) throw new ArgumentException($"strength {r.Strength} of {r.Steps} steps leaves no step to run");
        Scheduler.SetBeginIndex(tStart);
        // 3. init latents: scaling_factor · posterior sample, repeated for the batch, noised to timesteps[0]
        var posterior = Vae.Encode(r.Image);                                         // (N, 4, h, w)
        var draw = r.PosteriorNoise ?? Tensor.RandN(posterior.Mean.Shape, rng);
        var initLatents = posterior.Sample(draw) * Vae.ScalingFactor;
        if (initLatents.Dim(0) != batch) initLatents = Tensor.Concat([.. Enumerable.Repeat(initLatents, batch)], 0);   // (B, 4, h, w)
        var noise = r.Noise ?? Tensor.RandN(initLatents.Shape, rng);
        if (!ShapeUtil.Equal(noise.ShapeSpan, initLatents.ShapeSpan))
            throw new ArgumentException($"noise has shape {ShapeUtil.Format(noise.ShapeSpan)}, expected {ShapeUtil.Format(initLatents.ShapeSpan)}");
        var latents = Scheduler.AddNoise(initLatents, noise, [.. Enumerable.Repeat(timesteps[0], batch)]);
        // 4. denoising loop, 5. decode
        latents = Denoise(latents, timesteps, cond, uncond, r.GuidanceScale, rng, callback, cancellation, r.Control ?? [], preview: preview);
        return new PipelineOutput(cond, uncond, timesteps, latents, Decode(latents), warnings);
    }

    /// <summary>Inpainting (StableDiffusionInpaintPipeline). A 4-channel UNet: after every step the unmasked part is
    /// replaced by the image latents noised to the next timestep (plain after the last). A 9-channel inpainting UNet:
    /// its input is [scaled latents, mask, masked-image latents], no blending.</summary>
    public PipelineOutput Inpaint(InpaintRequest r, Rng rng, PipelineStepCallback? callback = null, CancellationToken cancellation = default,
        PipelinePreviewCallback? preview = null)
    {
        bool nine = UNet.Config.InChannels == 9;
        if (!nine && UNet.Config.InChannels != 4)
            throw new NotSupportedException($"inpainting needs a UNet with 4 (latent blending) or 9 (inpainting UNet) input channels, this one has {UNet.Config.InChannels}");
        if (r.Image.Rank != 4 || r.Image.Dim(0) != 1 || r.Image.Dim(1) != 3) throw new ArgumentException($"the image must be (1, 3, H, W), got {ShapeUtil.Format(r.Image.ShapeSpan)}");
        int height = r.Image.Dim(2), width = r.Image.Dim(3);
        CheckSize(width, height);
        if (!ShapeUtil.Equal(r.Mask.ShapeSpan, [1, 1, height, width]))
            throw new ArgumentException($"the mask is {ShapeUtil.Format(r.Mask.ShapeSpan)}, the image needs (1, 1, {height}, {width})");
        if (r.Strength <= 0 || r.Strength > 1) throw new ArgumentException($"strength must lie in (0, 1], got {r.Strength}");
        int batch = r.NumImages;
        bool cfg = r.GuidanceScale > 1;
        using var _ = Tensor.NoGrad();
        var draws = new Queue<Tensor>(r.Draws ?? []);
        Tensor Draw(int[] shape) => draws.Count > 0 ? draws.Dequeue() : Tensor.RandN(shape, rng);
        // 1. prompts, 2. timesteps (strength, set_begin_index)
        var warnings = new List<string>();
        var (cond, uncond) = EncodePrompt(r.Prompt, r.NegativePrompt, batch, warnings);
        Scheduler.SetTimesteps(r.Steps);
        int tStart = Math.Max(r.Steps - Math.Min((int)(r.Steps * r.Strength), r.Steps), 0) * Scheduler.Order;
        double[] timesteps = [.. Scheduler.Timesteps.Skip(tStart)];
        if (timesteps.Length == 0) throw new ArgumentException($"strength {r.Strength} of {r.Steps} steps leaves no step to run");
        Scheduler.SetBeginIndex(tStart);
        // 3. image latents (4 channels, or strength < 1), noise, start latents
        int h = height / VaeScaleFactor, w = width / VaeScaleFactor;
        Tensor? imageLatents = null;
        if (!nine || r.Strength < 1)
        {
            var posterior = Vae.Encode(r.Image);                                      // (1, 4, h, w)
            imageLatents = Repeat(posterior.Sample(Draw(posterior.Mean.Shape)) * Vae.ScalingFactor, batch);   // (B, 4, h, w)
        }
        int[] noiseShape = [batch, Vae.Config.LatentChannels, h, w];
        if (r.Noise is not null && !ShapeUtil.Equal(r.Noise.ShapeSpan, noiseShape))
            throw new ArgumentException($"noise has shape {ShapeUtil.Format(r.Noise.ShapeSpan)}, expected {ShapeUtil.Format(noiseShape)}");
        var noise = r.Noise ?? Draw(noiseShape);
        var latents = r.Strength >= 1 ? noise * Scheduler.InitNoiseSigma : Scheduler.AddNoise(imageLatents!, noise, [.. Enumerable.Repeat(timesteps[0], batch)]);
        // 4. the binarized mask at latent size (nearest) and the masked image's latents (drawn even where unused, as diffusers)
        var (mask, keep) = BinarizeMask(r.Mask, h, w);                                // (1, 1, h, w), (1, 1, H, W)
        var masked = Vae.Encode(r.Image * keep);                                     // masked_image = image · (mask < 0.5)
        var maskedLatents = Repeat(masked.Sample(Draw(masked.Mean.Shape)) * Vae.ScalingFactor, batch);      // (B, 4, h, w)
        // 5. the loop: blending after every step (4 channels) or the extra input channels (9)
        Tensor Blend(int i, Tensor x)
        {
            // σ-based schedulers' add_noise reads their step index once a run has begun, so the timestep matters only to the others
            var proper = i < timesteps.Length - 1 ? Scheduler.AddNoise(imageLatents!, noise, [.. Enumerable.Repeat(timesteps[i + 1], batch)]) : imageLatents!;
            return (1.0 - mask) * proper + mask * x;                                  // (B, 4, h, w)
        }
        var extra = Tensor.Concat([Repeat(mask, batch), maskedLatents], 1);          // (B, 5, h, w)
        if (cfg) extra = Tensor.Concat([extra, extra], 0);                           // (2B, 5, h, w)
        latents = nine
            ? Denoise(latents, timesteps, cond, uncond, r.GuidanceScale, rng, callback, cancellation, r.Control ?? [], r.StepNoise, extendInput: x => Tensor.Concat([x, extra], 1), preview: preview)
            : Denoise(latents, timesteps, cond, uncond, r.GuidanceScale, rng, callback, cancellation, r.Control ?? [], r.StepNoise, Blend, preview: preview);
        return new PipelineOutput(cond, uncond, timesteps, latents, Decode(latents), warnings);
    }

    /// <summary>The number of denoising steps (model calls) a run of <paramref name="steps"/> at <paramref name="strength"/>
    /// makes with this scheduler: its timesteps after img2img's and inpainting's start index. Sets the scheduler's timesteps.</summary>
    public int LoopLength(int steps, double strength = 1.0)
    {
        Scheduler.SetTimesteps(steps);
        int tStart = Math.Max(steps - Math.Min((int)(steps * strength), steps), 0) * Scheduler.Order;
        return Math.Max(Scheduler.Timesteps.Count - tStart, 0);
    }

    static Tensor Repeat(Tensor x, int batch) => x.Dim(0) == batch ? x : Tensor.Concat([.. Enumerable.Repeat(x, batch)], 0);

    /// <summary>diffusers' mask preprocessing: binarize at 0.5 (1 = paint), then F.interpolate(mode="nearest") to the latent
    /// size, which picks pixel ⌊i · H / h⌋. Returns the latent mask (1, 1, h, w) and the full-size keep mask (mask &lt; 0.5).</summary>
    static (Tensor Latent, Tensor Keep) BinarizeMask(Tensor mask, int h, int w)
    {
        int H = mask.Dim(2), W = mask.Dim(3);
        var m = mask.Contiguous().ToArray();
        var keep = new float[m.Length];
        for (int i = 0; i < m.Length; i++) { m[i] = m[i] < 0.5f ? 0f : 1f; keep[i] = 1f - m[i]; }
        var small = new float[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                small[y * w + x] = m[(int)((long)y * H / h) * W + (int)((long)x * W / w)];
        return (Tensor.FromArray(small, 1, 1, h, w), Tensor.FromArray(keep, 1, 1, H, W));
    }

    /// <summary>Both prompts to embeddings (B, 77, D), each repeated for the images per prompt.</summary>
    (Tensor Cond, Tensor Uncond) EncodePrompt(string prompt, string? negative, int numImages, List<string> warnings)
    {
        Tensor Encode(string text)
        {
            var tokens = Tokenizer.Encode(text);
            if (tokens.TruncationWarning is { } w) warnings.Add(w);
            var e = TextEncoder.EncodePrompt(tokens.InputIds, 1);                     // (1, 77, D)
            return numImages == 1 ? e : Tensor.Concat([.. Enumerable.Repeat(e, numImages)], 0);   // (B, 77, D)
        }
        return (Encode(prompt), Encode(negative ?? ""));
    }

    /// <summary>The loop of __call__: per timestep, the UNet (with any ControlNets' residuals) on [uncond; cond],
    /// guidance, one scheduler step.</summary>
    Tensor Denoise(Tensor latents, double[] timesteps, Tensor cond, Tensor uncond, double guidance, Rng rng,
        PipelineStepCallback? callback, CancellationToken cancellation, IReadOnlyList<ControlNetInput> control,
        IReadOnlyList<Tensor>? stepNoise = null, Func<int, Tensor, Tensor>? afterStep = null, Func<Tensor, Tensor>? extendInput = null,
        PipelinePreviewCallback? preview = null)
    {
        if (stepNoise is not null && stepNoise.Count != timesteps.Length)
            throw new ArgumentException($"{stepNoise.Count} step noise tensors for {timesteps.Length} steps");
        bool cfg = guidance > 1;                                                     // diffusers: do_classifier_free_guidance
        var context = cfg ? Tensor.Concat([uncond, cond], 0) : cond;                 // (2B or B, 77, D)
        var controlImages = control.Select(c => ControlImage(c, latents.Dim(0), cfg)).ToList();
        for (int i = 0; i < timesteps.Length; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            double t = timesteps[i];
            var input = Scheduler.ScaleModelInput(cfg ? Tensor.Concat([latents, latents], 0) : latents, t);   // (2B, 4, h, w)
            var tensorT = Tensor.FromArray([(float)t], 1);
            ControlNetOutput? residuals = null;
            if (control.Count > 0)
            {
                // diffusers' controlnet_keep: a net's scale is 0 outside [start, end] of the steps
                var outputs = control.Select((c, k) =>
                {
                    bool off = (double)i / timesteps.Length < c.GuidanceStart || (double)(i + 1) / timesteps.Length > c.GuidanceEnd;
                    return c.Net.Forward(input, tensorT, context, controlImages[k], c.Scale * (off ? 0.0 : 1.0));
                }).ToList();
                residuals = outputs.Count == 1 ? outputs[0] : ControlNetOutput.Sum(outputs);
            }
            var noisePred = UNet.Forward(extendInput?.Invoke(input) ?? input, tensorT, context, null, residuals?.DownBlockResSamples, residuals?.MidBlockResSample);
            if (cfg)
            {
                int b = latents.Dim(0);
                Tensor u = noisePred.Slice(0, 0, b), c = noisePred.Slice(0, b, b);
                noisePred = u + guidance * (c - u);                                  // ε_u + W(ε_c − ε_u), float32
            }
            var x0 = preview is null ? null : LatentPreview.PredictedX0(Scheduler, cfg ? input.Slice(0, 0, latents.Dim(0)) : input, noisePred, t);
            latents = Scheduler.Step(noisePred, t, latents, stepNoise is null ? (NoiseSource)rng : stepNoise[i]).PrevSample;
            if (afterStep is not null) latents = afterStep(i, latents);
            callback?.Invoke(i, t, latents);
            if (x0 is not null) preview!(i, t, x0);
        }
        return latents;
    }

    /// <summary>A control image repeated for the batch and doubled for guidance: (2B or B, 3, H, W).</summary>
    Tensor ControlImage(ControlNetInput c, int batch, bool cfg)
    {
        var img = c.Image;
        if (img.Rank != 4 || (img.Dim(0) != 1 && img.Dim(0) != batch))
            throw new ArgumentException($"a control image must be (1 or {batch}, C, H, W), got {ShapeUtil.Format(img.ShapeSpan)}");
        if (img.Dim(0) != batch) img = Tensor.Concat([.. Enumerable.Repeat(img, batch)], 0);
        return cfg ? Tensor.Concat([img, img], 0) : img;
    }

    /// <summary>latents (B, 4, h, w) → image (B, 3, H, W) in [0, 1].</summary>
    public Tensor Decode(Tensor latents)
    {
        using var _ = Tensor.NoGrad();
        var z = latents / Vae.ScalingFactor;
        bool tiled = VaeTiling is { } tiling && (z.Dim(2) > tiling.TileLatents || z.Dim(3) > tiling.TileLatents);   // as diffusers: only past one tile
        var x = tiled ? Vae.DecodeTiled(z, VaeTiling!) : Vae.Decode(z);            // (B, 3, H, W) in ≈[-1, 1]
        return (x / 2.0 + 0.5).Clamp(0, 1);
    }

    void CheckSize(int width, int height)
    {
        if (width <= 0 || height <= 0 || width % 8 != 0 || height % 8 != 0)
            throw new ArgumentException($"width and height must be positive multiples of 8, got {width}x{height}");
        if (width % VaeScaleFactor != 0 || height % VaeScaleFactor != 0)
            throw new ArgumentException($"width and height must be multiples of the VAE's scale factor {VaeScaleFactor}, got {width}x{height}");
    }
}

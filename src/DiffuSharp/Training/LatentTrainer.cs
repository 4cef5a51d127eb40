// Text-to-image latent diffusion training (Rombach et al. 2022, seed 002's recipe): a UNet2DConditionModel denoises
// VAE latents while cross-attending to a CLIP text encoder's last hidden state, and the text encoder is trained with
// it (as the latent diffusion paper trained its transformer jointly on text-to-image). One Step(): draw a batch of
// image indices; caption each image (FashionCaptions: label + measured attributes, a fresh draw per epoch, 10%
// empty for classifier-free guidance); z = scaling_factor · (μ + σ·ε') from the cached VAE posterior; t uniform in
// [0, T); x_t = √ᾱ_t z + √(1 − ᾱ_t) ε with ᾱ from the noise scheduler's config (diffusers' DDPMScheduler.add_noise);
// the target is ε, v = √ᾱ ε − √(1 − ᾱ) z or z by prediction_type; MSE per sample, optionally min-SNR-γ weighted
// (diffusers' train_text_to_image.py), batch mean; back-propagate through both models; clip; AdamW over one flat
// buffer holding both; EMA with diffusers' warm-up cap. The batch is drawn by NoisedLatentBatches (shared with the
// ControlNet trainer). Every random draw comes from seeded Rngs that LatentCheckpoint
// saves with the data position, so a run resumes bit-exactly.
using System.Diagnostics;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Diffusion;
using DiffuSharp.NN;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;

namespace DiffuSharp.Training;

/// <summary>The UNet and the text encoder trained together (parameter names "unet.…" and "text_encoder.…").</summary>
public sealed class TextToImageModel : Module
{
    /// <summary>The denoiser: ε (or v) of the noisy latents, cross-attending to the text encoder's output.</summary>
    public UNet2DConditionModel UNet { get; }
    /// <summary>The CLIP text encoder whose last hidden state (B, L, hidden_size) the UNet attends to.</summary>
    public ClipTextModel TextEncoder { get; }

    /// <summary>Both models with random initial weights from <paramref name="rng"/> (the UNet's drawn first); throws when the
    /// UNet's cross_attention_dim is not the text encoder's hidden_size.</summary>
    public TextToImageModel(UNet2DConditionConfig unet, ClipTextConfig textEncoder, Rng rng)
    {
        if (unet.CrossAttentionDim.Any(d => d != textEncoder.HiddenSize))
            throw new ArgumentException($"the UNet's cross_attention_dim ({string.Join(", ", unet.CrossAttentionDim.Distinct())}) must equal the text encoder's hidden_size {textEncoder.HiddenSize}");
        UNet = Register("unet", new UNet2DConditionModel(unet, rng));
        TextEncoder = Register("text_encoder", new ClipTextModel(textEncoder, rng));
    }

    /// <summary>The prefixes of the two parts' parameter names in this module (and in the checkpoint's safetensors).</summary>
    public const string UNetPrefix = "unet.", TextEncoderPrefix = "text_encoder.";
}

/// <summary>What the loss is: min-SNR-γ weighting (0 = off) and offset noise (0 = off). The prediction type and the
/// noise schedule are the scheduler config's.</summary>
/// <param name="SnrGamma">γ of min-SNR-γ weighting (diffusers' --snr_gamma; 0 = off)</param>
/// <param name="NoiseOffset">offset noise strength (diffusers' --noise_offset; 0 = off)</param>
public sealed record LatentObjective(double SnrGamma = 0, double NoiseOffset = 0)
{
    /// <summary>Throws ArgumentException naming the first value out of range.</summary>
    public void Validate()
    {
        if (!(SnrGamma >= 0) || double.IsInfinity(SnrGamma)) throw new ArgumentException($"snr_gamma must be a finite number ≥ 0, got {SnrGamma}");
        if (!(NoiseOffset >= 0) || double.IsInfinity(NoiseOffset)) throw new ArgumentException($"noise_offset must be a finite number ≥ 0, got {NoiseOffset}");
    }

    /// <summary>The objective as trainer.json stores it: snr_gamma, noise_offset.</summary>
    public JsonObject ToJson() => new() { ["snr_gamma"] = SnrGamma, ["noise_offset"] = NoiseOffset };

    /// <summary>Reads <see cref="ToJson"/>'s object; a missing or malformed key is an InvalidDataException naming <paramref name="source"/>.</summary>
    public static LatentObjective FromJson(JsonObject o, string source)
    {
        try { return new LatentObjective(o["snr_gamma"]!.GetValue<double>(), o["noise_offset"]!.GetValue<double>()); }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: malformed latent objective ({e.Message})");
        }
    }
}

/// <summary>The training images as the latent trainer sees them: cached VAE posteriors, labels and measured attributes;
/// with <paramref name="Captions"/> one fixed caption per image instead of a drawn one each epoch.</summary>
/// <param name="Latents">the VAE posteriors of the images</param>
/// <param name="Labels">each image's class label</param>
/// <param name="Attributes">each image's measured brightness, size and texture (the caption words)</param>
/// <param name="Drawing">how captions are drawn each epoch (null: <see cref="CaptionOptions"/>' defaults)</param>
public sealed record CaptionedLatents(LatentCache Latents, int[] Labels, IReadOnlyList<FashionAttributes> Attributes, IReadOnlyList<string>? Captions = null,
    CaptionOptions? Drawing = null)
{
    /// <summary>How many training images.</summary>
    public int Count => Latents.Count;
}

/// <summary>One step: the (weighted) loss, the unweighted MSE, lr, gradient norm before clipping, seconds.</summary>
/// <param name="Step">the step count after this step</param>
/// <param name="Loss">the loss optimised (min-SNR weighted when on)</param>
/// <param name="Mse">the unweighted MSE, batch mean</param>
/// <param name="Lr">the learning rate used</param>
/// <param name="GradNorm">the global gradient norm before clipping</param>
/// <param name="Seconds">wall time of the step</param>
public sealed record LatentStepStats(long Step, double Loss, double Mse, double Lr, double GradNorm, double Seconds);

/// <summary>Trains a UNet2DConditionModel and a CLIP text encoder together on cached latents (see the file header).</summary>
public sealed class LatentTrainer
{
    readonly Rng _dataRng, _latentRng, _timeRng, _noiseRng, _dropoutRng;
    readonly NoisedLatentBatches _batches;

    /// <summary>The UNet's diffusers config.</summary>
    public UNet2DConditionConfig UNetConfig { get; }
    /// <summary>The text encoder's transformers config.</summary>
    public ClipTextConfig TextConfig { get; }
    /// <summary>The noise schedule and prediction type (a DDPMScheduler config, saved as the pipeline's scheduler).</summary>
    public SchedulerConfig NoiseScheduler { get; }
    /// <summary>Batch size, learning rate and its schedule, gradient clip, EMA rate, step budget, seed, intervals.</summary>
    public TrainConfig Config { get; }
    /// <summary>min-SNR-γ and offset noise.</summary>
    public LatentObjective Objective { get; }
    /// <summary>The CLIP tokenizer; its padding length is the text encoder's sequence length.</summary>
    public ClipTokenizer Tokenizer { get; }
    /// <summary>The training images: cached latents, labels, attributes (and fixed captions, if any).</summary>
    public CaptionedLatents Data { get; }
    /// <summary>The UNet and text encoder being trained (their parameters live in <see cref="Flat"/>).</summary>
    public TextToImageModel Model { get; }
    /// <summary>Every parameter and gradient of both models in one flat buffer each.</summary>
    public FlatParameters Flat { get; }
    /// <summary>AdamW over <see cref="Flat"/>.</summary>
    public AdamW Optimizer { get; }
    /// <summary>The EMA of the weights (the first rate of Config.EmaRate), or null when EMA is off.</summary>
    public Ema? Ema { get; }
    /// <summary>Optimisation steps taken so far (restored on resume).</summary>
    public long StepCount { get; private set; }

    /// <summary>A new run: both models initialised from Config.Seed; throws ArgumentException when the parts do not fit
    /// together (latent channels or size against the UNet, tokenizer length against the text encoder, batch against the data).</summary>
    public LatentTrainer(UNet2DConditionConfig unet, ClipTextConfig text, SchedulerConfig noiseScheduler, TrainConfig config,
        LatentObjective objective, ClipTokenizer tokenizer, CaptionedLatents data)
    {
        ArgumentNullException.ThrowIfNull(data);
        config.Validate();
        objective.Validate();
        var shape = data.Latents.LatentShape;
        if (unet.InChannels != shape[0] || unet.OutChannels != shape[0])
            throw new ArgumentException($"the latents have {shape[0]} channels, the UNet takes {unet.InChannels} and gives {unet.OutChannels} (in_channels, out_channels)");
        int factor = 1 << (unet.BlockOutChannels.Length - 1);
        if (shape[1] % factor != 0 || shape[2] % factor != 0)
            throw new ArgumentException($"latents of {shape[1]}×{shape[2]} cannot be halved {unet.BlockOutChannels.Length - 1} times by the UNet's {unet.BlockOutChannels.Length} levels");
        if (tokenizer.MaxLength > text.MaxPositionEmbeddings)
            throw new ArgumentException($"the tokenizer pads to {tokenizer.MaxLength} tokens, the text encoder has {text.MaxPositionEmbeddings} positions (max_position_embeddings)");
        if (data.Labels.Length != data.Count || data.Attributes.Count != data.Count)
            throw new ArgumentException($"{data.Count} latents, {data.Labels.Length} labels and {data.Attributes.Count} attribute sets");
        if (data.Captions is { } fixedCaptions && fixedCaptions.Count != data.Count)
            throw new ArgumentException($"{data.Count} latents but {fixedCaptions.Count} captions");
        if (config.BatchSize > data.Count) throw new ArgumentException($"batch_size {config.BatchSize} is larger than the dataset ({data.Count} images)");
        data.Drawing?.Validate();
        (UNetConfig, TextConfig, NoiseScheduler, Config, Objective, Tokenizer, Data) = (unet, text, noiseScheduler, config, objective, tokenizer, data);

        var root = new Rng(config.Seed);                    // model init first: the weights depend only on the seed
        Model = new TextToImageModel(unet, text, root.Fork());
        _dataRng = root.Fork();
        _latentRng = root.Fork();
        _timeRng = root.Fork();
        _noiseRng = root.Fork();
        _dropoutRng = root.Fork();
        Flat = Model.PackParameters();
        Model.Train();
        var flatParam = Tensor.Wrap(Flat.Values, Flat.Values.Length);
        flatParam.Grad = Tensor.Wrap(Flat.Grads, Flat.Grads.Length);
        Optimizer = new AdamW([flatParam], new AdamWConfig(Lr: config.Lr, WeightDecay: config.WeightDecay));
        var rates = config.EmaRates();
        Ema = rates.Length > 0 ? new Ema([flatParam], rates[0]) : null;
        _batches = new NoisedLatentBatches(data, tokenizer, noiseScheduler, config.BatchSize, config.Seed, objective.NoiseOffset,
            _dataRng, _latentRng, _timeRng, _noiseRng);
    }

    /// <summary>Fine-tuning: starts from trained weights instead of the seed's. Copies <paramref name="unet"/>'s and
    /// <paramref name="textEncoder"/>'s parameters into the model and restarts the EMA from them; only before the first
    /// step. Throws InvalidDataException naming <paramref name="source"/> when a parameter's name or shape differs.</summary>
    public void InitializeFrom(UNet2DConditionModel unet, ClipTextModel textEncoder, string source)
    {
        if (StepCount != 0) throw new InvalidOperationException($"InitializeFrom: the run has taken {StepCount} steps; weights can only be set before the first");
        var state = unet.NamedParameters(TextToImageModel.UNetPrefix).Concat(textEncoder.NamedParameters(TextToImageModel.TextEncoderPrefix))
            .ToDictionary(p => p.Name, p => (p.Param.Shape.ToArray(), p.Param.ToArray()));
        Model.LoadStateDict(state, strict: true, source: source);
        Ema?.ImportState(new EmaState(Ema.Rate, [Flat.Values.ToArray()]));
    }

    /// <summary>The epoch the next batch is drawn from (captions are drawn afresh each epoch).</summary>
    public int Epoch => _batches.Epoch;

    /// <summary>The token ids (B, L) of the captions of these images in this epoch (their fixed captions, if given).</summary>
    public int[] TokenIds(ReadOnlySpan<int> images, int epoch, out string[] captions)
        => _batches.TokenIds(images, epoch, out captions);

    /// <summary>One optimisation step (see the file header); throws NonFiniteTrainingException, changing nothing, when the
    /// loss or the gradient norm is not finite.</summary>
    public LatentStepStats Step()
    {
        var clock = Stopwatch.StartNew();
        using var scope = TensorScope.Begin();
        int B = Config.BatchSize;
        double lr = Config.LrAt(StepCount);
        var batch = _batches.Next();
        var (ids, t, xt, shape) = (batch.Ids, batch.Timesteps, batch.Noisy, batch.Shape);

        Model.ZeroGrad();
        var context = Model.TextEncoder.Forward(ids, B).LastHiddenState;              // (B, L, D)
        var timesteps = Tensor.FromArray(t.Select(v => (float)v).ToArray(), B);
        var output = Model.UNet.Forward(Tensor.FromArray(xt, shape), timesteps, context, rng: _dropoutRng);
        var (loss, mse) = _batches.Loss(output, batch, Objective.SnrGamma);
        double lossValue = loss.Item(), mseValue = mse.Mean().Item();
        double gradNorm = FlatTraining.Finish(loss, lossValue, StepCount, Who, Optimizer, Config.GradClip, lr, Ema, Model);
        StepCount++;
        return new LatentStepStats(StepCount, lossValue, mseValue, lr, gradNorm, clock.Elapsed.TotalSeconds);
    }

    /// <summary>min(SNR_t, γ)/SNR_t for ε, min(SNR_t, γ)/(SNR_t + 1) for v, min(SNR_t, γ) for x_0 (Hang et al. 2023, as
    /// diffusers' compute_snr weighting).</summary>
    public float[] MinSnrWeights(int[] t)
        => _batches.MinSnrWeights(t, Objective.SnrGamma);

    /// <summary>The EMA rate of the update after <paramref name="step"/> completed steps: min(rate, (1 + step)/(10 + step)).</summary>
    public double EmaRateAt(long step) => FlatTraining.EmaRate(Ema, step);

    /// <summary>The live weights, or the EMA's, as (name, shape, values) in parameter order (names with their prefix).</summary>
    public IEnumerable<(string Name, int[] Shape, float[] Data)> ExportWeights(Ema? ema = null) => FlatTraining.Weights(Model, Flat.Values, ema);

    /// <summary>The weights of one part ("unet." or "text_encoder."), prefix removed.</summary>
    public static IEnumerable<(string Name, int[] Shape, float[] Data)> Part(IEnumerable<(string Name, int[] Shape, float[] Data)> weights, string prefix)
        => weights.Where(w => w.Name.StartsWith(prefix, StringComparison.Ordinal)).Select(w => (w.Name[prefix.Length..], w.Shape, w.Data));

    /// <summary>A copy of the UNet and text encoder holding the EMA weights (the live ones without EMA), in eval mode.</summary>
    public TextToImageModel EmaModel()
    {
        var copy = new TextToImageModel(UNetConfig, TextConfig, new Rng(0));
        copy.LoadStateDict(ExportWeights(Ema).ToDictionary(w => w.Name, w => (w.Shape, w.Data)), strict: true, source: "EMA");
        copy.Eval();
        return copy;
    }

    /// <summary>Step, every RNG state and the data position (weights, optimizer and EMA are saved separately).</summary>
    public TrainerState ExportState() => new(StepCount, FlatTraining.States(Rngs), _batches.GetState(), null);

    /// <summary>Restores <see cref="ExportState"/>'s state; a missing RNG is an InvalidDataException.</summary>
    public void ImportState(TrainerState state)
    {
        _batches.SetState(state.Data);
        FlatTraining.Restore(state, Rngs);
        StepCount = state.Step;
    }

    (string, Rng)[] Rngs => [("data", _dataRng), ("latent", _latentRng), ("timesteps", _timeRng), ("noise", _noiseRng), ("dropout", _dropoutRng)];

    const string Who = "train-latent: ";

    /// <summary>Throws when a weight or EMA value is not finite (never save those).</summary>
    public void CheckFinite() => FlatTraining.CheckFinite(Flat.Values, Ema, StepCount, Who);
}

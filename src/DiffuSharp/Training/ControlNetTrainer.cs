// ControlNet training (Zhang et al. 2023; diffusers' examples/controlnet/train_controlnet.py): a trained text-to-image
// UNet and its text encoder stay frozen, and a ControlNet initialised from the UNet's encoder half (ControlNetModel.
// FromUNet: zero convolutions) learns to steer it with a control image. One Step(): draw a batch of image indices;
// caption each image as LatentTrainer does (FashionCaptions, drawn afresh per epoch, 10% empty); encode the captions
// with the frozen text encoder (no graph); z = scaling_factor · (μ + σ·ε') from the cached posterior; t uniform in
// [0, T); x_t = √ᾱ_t z + √(1 − ᾱ_t) ε with ᾱ from the pipeline's scheduler config; the ControlNet sees (x_t, t, text,
// control image of those images) and its residuals go into the frozen UNet; the target is ε, v or z by the
// scheduler's prediction_type; MSE per sample (optionally min-SNR-γ weighted), batch mean; back-propagate: the UNet's
// and text encoder's weights do not require gradients, so only the ControlNet's are computed; clip; AdamW; EMA with
// diffusers' warm-up cap. Every random draw comes from seeded Rngs that ControlNetCheckpoint saves with the data
// position, so a run resumes bit-exactly.
using System.Diagnostics;
using DiffuSharp.Data;
using DiffuSharp.Diffusion;
using DiffuSharp.NN;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;

namespace DiffuSharp.Training;

/// <summary>Trains a ControlNet on cached latents and control images, with a frozen UNet and text encoder (see the file
/// header).</summary>
public sealed class ControlNetTrainer
{
    /// <summary>The command's name, which starts the trainer's error messages.</summary>
    public const string Name = "train-controlnet";

    readonly Rng _dataRng, _latentRng, _timeRng, _noiseRng;
    readonly NoisedLatentBatches _batches;

    /// <summary>The frozen UNet (eval mode, no gradients).</summary>
    public UNet2DConditionModel UNet { get; }
    /// <summary>The frozen text encoder (eval mode, no gradients).</summary>
    public ClipTextModel TextEncoder { get; }
    /// <summary>The ControlNet being trained.</summary>
    public ControlNetModel Net { get; }
    /// <summary>The noise schedule and prediction type (the pipeline's scheduler config).</summary>
    public SchedulerConfig NoiseScheduler { get; }
    /// <summary>Batch size, learning rate and its schedule, gradient clip, EMA rate, step budget, seed, intervals.</summary>
    public TrainConfig Config { get; }
    /// <summary>min-SNR-γ and offset noise.</summary>
    public LatentObjective Objective { get; }
    /// <summary>The CLIP tokenizer; its padding length is the text encoder's sequence length.</summary>
    public ClipTokenizer Tokenizer { get; }
    /// <summary>The training images: cached latents, labels, attributes (and fixed captions, if any).</summary>
    public CaptionedLatents Data { get; }
    /// <summary>The control image of every training image, in the same order as <see cref="Data"/>.</summary>
    public ControlImages Control { get; }
    /// <summary>Every parameter and gradient of the ControlNet in one flat buffer each.</summary>
    public FlatParameters Flat { get; }
    /// <summary>AdamW over <see cref="Flat"/>.</summary>
    public AdamW Optimizer { get; }
    /// <summary>The EMA of the ControlNet's weights (the first rate of Config.EmaRate), or null when EMA is off.</summary>
    public Ema? Ema { get; }
    /// <summary>Optimisation steps taken so far (restored on resume).</summary>
    public long StepCount { get; private set; }

    /// <summary>A new run: the ControlNet initialised from <paramref name="unet"/> (<see cref="ControlNetModel.FromUNet"/>,
    /// seeded by Config.Seed), the UNet and text encoder frozen; throws ArgumentException when the parts do not fit
    /// together (latents against the UNet, text encoder against the UNet and the tokenizer, control images against
    /// the latents, batch against the data).</summary>
    /// <param name="conditioningEmbeddingOutChannels">the control image embedding's widths: len − 1 halvings take the
    /// control images to the latents' size</param>
    public ControlNetTrainer(UNet2DConditionModel unet, ClipTextModel textEncoder, SchedulerConfig noiseScheduler, TrainConfig config,
        LatentObjective objective, ClipTokenizer tokenizer, CaptionedLatents data, ControlImages control, int[] conditioningEmbeddingOutChannels)
    {
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(textEncoder);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(control);
        config.Validate();
        objective.Validate();
        var shape = data.Latents.LatentShape;
        var u = unet.Config;
        if (u.InChannels != shape[0]) throw new ArgumentException($"the latents have {shape[0]} channels, the UNet takes {u.InChannels} (in_channels)");
        if (u.CrossAttentionDim.Any(d => d != textEncoder.Config.HiddenSize))
            throw new ArgumentException($"the UNet's cross_attention_dim ({string.Join(", ", u.CrossAttentionDim.Distinct())}) differs from the text encoder's hidden_size {textEncoder.Config.HiddenSize}");
        if (tokenizer.MaxLength > textEncoder.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"the tokenizer pads to {tokenizer.MaxLength} tokens, the text encoder has {textEncoder.Config.MaxPositionEmbeddings} positions (max_position_embeddings)");
        if (data.Labels.Length != data.Count || data.Attributes.Count != data.Count)
            throw new ArgumentException($"{data.Count} latents, {data.Labels.Length} labels and {data.Attributes.Count} attribute sets");
        if (control.Count != data.Count) throw new ArgumentException($"{data.Count} latents but {control.Count} control images");
        if (shape[1] != shape[2]) throw new ArgumentException($"latents of {shape[1]}×{shape[2]}: square latents are needed");
        int halvings = conditioningEmbeddingOutChannels.Length - 1;
        if (halvings < 0 || control.Size != shape[1] << halvings)
            throw new ArgumentException($"control images of {control.Size}×{control.Size} must embed to the {shape[1]}×{shape[2]} latents, but conditioning_embedding_out_channels " +
                $"({string.Join(", ", conditioningEmbeddingOutChannels)}) halves them {Math.Max(halvings, 0)} times: give {(int)Math.Round(Math.Log2((double)control.Size / shape[1])) + 1} entries");
        if (config.BatchSize > data.Count) throw new ArgumentException($"batch_size {config.BatchSize} is larger than the dataset ({data.Count} images)");
        (UNet, TextEncoder, NoiseScheduler, Config, Objective, Tokenizer, Data, Control) = (unet, textEncoder, noiseScheduler, config, objective, tokenizer, data, control);

        foreach (var (_, p) in unet.NamedParameters()) p.RequireGrad(false);
        foreach (var (_, p) in textEncoder.NamedParameters()) p.RequireGrad(false);
        unet.Eval();
        textEncoder.Eval();

        var root = new Rng(config.Seed);                    // model init first: the weights depend only on the seed and the UNet
        Net = ControlNetModel.FromUNet(unet, ControlImages.Channels, conditioningEmbeddingOutChannels, root.Fork());
        _dataRng = root.Fork();
        _latentRng = root.Fork();
        _timeRng = root.Fork();
        _noiseRng = root.Fork();
        Flat = Net.PackParameters();
        Net.Train();
        var flatParam = Tensor.Wrap(Flat.Values, Flat.Values.Length);
        flatParam.Grad = Tensor.Wrap(Flat.Grads, Flat.Grads.Length);
        Optimizer = new AdamW([flatParam], new AdamWConfig(Lr: config.Lr, WeightDecay: config.WeightDecay));
        var rates = config.EmaRates();
        Ema = rates.Length > 0 ? new Ema([flatParam], rates[0]) : null;
        _batches = new NoisedLatentBatches(data, tokenizer, noiseScheduler, config.BatchSize, config.Seed, objective.NoiseOffset,
            _dataRng, _latentRng, _timeRng, _noiseRng);
    }

    /// <summary>The condition the ControlNet learns (that of <see cref="Control"/>).</summary>
    public ControlCondition Condition => Control.Condition;

    /// <summary>The epoch the next batch is drawn from (captions are drawn afresh each epoch).</summary>
    public int Epoch => _batches.Epoch;

    /// <summary>The token ids (B, L) of the captions of these images in this epoch (their fixed captions, if given).</summary>
    public int[] TokenIds(ReadOnlySpan<int> images, int epoch, out string[] captions)
        => _batches.TokenIds(images, epoch, out captions);

    /// <summary>One optimisation step (see the file header); throws NonFiniteTrainingException, with the weights,
    /// optimizer, EMA and step count unchanged, when the loss or the gradient norm is not finite.</summary>
    public LatentStepStats Step()
    {
        var clock = Stopwatch.StartNew();
        using var scope = TensorScope.Begin();
        int B = Config.BatchSize;
        double lr = Config.LrAt(StepCount);
        var batch = _batches.Next();
        var (images, ids, t, xt, shape) = (batch.Images, batch.Ids, batch.Timesteps, batch.Noisy, batch.Shape);

        Net.ZeroGrad();
        Tensor context;
        using (Tensor.NoGrad()) context = TextEncoder.Forward(ids, B).LastHiddenState;   // (B, L, D), a constant
        var timesteps = Tensor.FromArray(t.Select(v => (float)v).ToArray(), B);
        var sample = Tensor.FromArray(xt, shape);
        var residuals = Net.Forward(sample, timesteps, context, Control.Batch(images));
        var output = UNet.Forward(sample, timesteps, context, null, residuals.DownBlockResSamples, residuals.MidBlockResSample);
        var (loss, mse) = _batches.Loss(output, batch, Objective.SnrGamma);
        double lossValue = loss.Item(), mseValue = mse.Mean().Item();
        double gradNorm = FlatTraining.Finish(loss, lossValue, StepCount, Who, Optimizer, Config.GradClip, lr, Ema, Net);
        StepCount++;
        return new LatentStepStats(StepCount, lossValue, mseValue, lr, gradNorm, clock.Elapsed.TotalSeconds);
    }

    /// <summary>min(SNR_t, γ)/SNR_t for ε, min(SNR_t, γ)/(SNR_t + 1) for v, min(SNR_t, γ) for x_0 (as LatentTrainer).</summary>
    public float[] MinSnrWeights(int[] t)
        => _batches.MinSnrWeights(t, Objective.SnrGamma);

    /// <summary>The EMA rate of the update after <paramref name="step"/> completed steps: min(rate, (1 + step)/(10 + step)).</summary>
    public double EmaRateAt(long step) => FlatTraining.EmaRate(Ema, step);

    /// <summary>The ControlNet's live weights, or the EMA's, as (name, shape, values) in parameter order (diffusers' names).</summary>
    public IEnumerable<(string Name, int[] Shape, float[] Data)> ExportWeights(Ema? ema = null) => FlatTraining.Weights(Net, Flat.Values, ema);

    /// <summary>A copy of the ControlNet holding the EMA weights (the live ones without EMA), in eval mode.</summary>
    public ControlNetModel EmaNet()
    {
        var copy = new ControlNetModel(Net.Config, new Rng(0));
        copy.LoadStateDict(ExportWeights(Ema).ToDictionary(w => w.Name, w => (w.Shape, w.Data)), strict: true, source: "EMA");
        copy.Eval();
        return copy;
    }

    /// <summary>Step, every RNG state and the data position (weights, optimizer and EMA are saved separately).</summary>
    public TrainerState ExportState() => new(StepCount, FlatTraining.States(Rngs), _batches.GetState(), null);

    /// <summary>Restores <see cref="ExportState"/>'s state; a negative step or a missing RNG is an InvalidDataException.</summary>
    public void ImportState(TrainerState state)
    {
        _batches.SetState(state.Data);
        FlatTraining.Restore(state, Rngs);
        StepCount = state.Step;
    }

    (string, Rng)[] Rngs => [("data", _dataRng), ("latent", _latentRng), ("timesteps", _timeRng), ("noise", _noiseRng)];

    const string Who = Name + ": ";

    /// <summary>Throws when a weight or EMA value is not finite (never save those).</summary>
    public void CheckFinite() => FlatTraining.CheckFinite(Flat.Values, Ema, StepCount, Who);
}

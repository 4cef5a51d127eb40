// AutoencoderKL training (latent diffusion's first stage), one Step() at a time: draw a batch, draw the posterior's
// ε, VaeLoss (reconstruction + kl_weight·KL), back-propagate, clip the global gradient norm, set the lr (warm-up,
// anneal: TrainConfig.LrAt), AdamW, EMA. The same pieces as the diffusion Trainer (DataLoader, AdamW over one flat
// parameter buffer, Ema, GradClip, TensorScope per step); all randomness from two seeded Rngs (data order, posterior
// noise) that VaeCheckpoint saves, so a run resumes bit-exactly. A non-finite loss or gradient stops the step before
// anything changes (NonFiniteTrainingException), as in the diffusion Trainer.
// The EMA's rate is capped by (1 + k)/(10 + k) at update k = 0, 1, … (diffusers' EMAModel): it starts as a copy of
// the initial weights, and at a fixed 0.999 it would still be 78% initial weights after 250 steps.
// ScalingFactor: as Stable Diffusion's 0.18215 was found, 1 / the standard deviation of the posterior samples of a
// batch of training images (all elements), measured with the EMA weights.
using System.Diagnostics;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.NN;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Training;

/// <summary>The VAE objective: reconstruction kind, KL weight (SD: 1e-6), and the padding added to every image. With
/// <paramref name="FreezeEncoder"/> only the decoder side (post_quant_conv, decoder) learns: the encoder's gradients are
/// zeroed before the optimizer step, so the latent space a diffusion model was trained on stays exactly as it was
/// (Stable Diffusion's "ft-MSE" VAE was fine-tuned this way).</summary>
public sealed record VaeObjective(ReconstructionLoss Loss = ReconstructionLoss.L1, double KlWeight = 1e-6, int Pad = 2, bool FreezeEncoder = false)
{
    /// <summary>Throws ArgumentException naming the first value out of range.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Loss)) throw new ArgumentException($"loss must be l1 or l2, got {Loss}");
        if (!(KlWeight >= 0) || double.IsInfinity(KlWeight)) throw new ArgumentException($"kl_weight must be a finite number ≥ 0, got {KlWeight}");
        if (Pad < 0) throw new ArgumentException($"pad must be ≥ 0, got {Pad}");
    }

    /// <summary>The objective as trainer.json stores it: loss, kl_weight, pad, freeze_encoder.</summary>
    public JsonObject ToJson() => new() { ["loss"] = Loss == ReconstructionLoss.L1 ? "l1" : "l2", ["kl_weight"] = KlWeight, ["pad"] = Pad, ["freeze_encoder"] = FreezeEncoder };

    /// <summary>Reads <see cref="ToJson"/>'s object (freeze_encoder absent: false); malformed is an InvalidDataException naming <paramref name="source"/>.</summary>
    public static VaeObjective FromJson(JsonObject o, string source)
    {
        try
        {
            var loss = o["loss"]!.GetValue<string>() switch
            {
                "l1" => ReconstructionLoss.L1, "l2" => ReconstructionLoss.L2,
                var s => throw new FormatException($"loss \"{s}\""),
            };
            return new VaeObjective(loss, o["kl_weight"]!.GetValue<double>(), o["pad"]!.GetValue<int>(), o["freeze_encoder"]?.GetValue<bool>() ?? false);
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: malformed VAE objective ({e.Message})");
        }
    }
}

/// <summary>One VAE step: Loss = Rec + kl_weight·Kl (per image, batch mean).</summary>
public sealed record VaeStepStats(long Step, double Loss, double Rec, double Kl, double Lr, double GradNorm, double Seconds);

/// <summary>Trains an AutoencoderKL one <see cref="Step"/> at a time (see the file header).</summary>
public sealed class VaeTrainer
{
    readonly Rng _dataRng, _noiseRng;
    readonly DataLoader _data;
    readonly float[] _images;
    readonly int _c, _h, _w;
    readonly (int Start, int Length)[] _frozen;                    // flat ranges whose gradients are zeroed

    /// <summary>The VAE's diffusers config.</summary>
    public AutoencoderKLConfig VaeConfig { get; }
    /// <summary>Batch size, learning rate and its schedule, gradient clip, EMA rate, step budget, seed.</summary>
    public TrainConfig Config { get; }
    /// <summary>Reconstruction loss, KL weight, padding, frozen encoder.</summary>
    public VaeObjective Objective { get; }
    /// <summary>The autoencoder being trained (its parameters live in <see cref="Flat"/>).</summary>
    public AutoencoderKL Model { get; }
    /// <summary>Every parameter and gradient in one flat buffer each.</summary>
    public FlatParameters Flat { get; }
    /// <summary>AdamW over <see cref="Flat"/>.</summary>
    public AdamW Optimizer { get; }
    /// <summary>The EMA of the first rate of Config.EmaRate, or null when it is empty.</summary>
    public Ema? Ema { get; }
    /// <summary>Optimisation steps taken so far (restored on resume).</summary>
    public long StepCount { get; private set; }
    /// <summary>How many images the trainer draws from (a resumed run must get the same ones).</summary>
    public int TrainImages { get; }

    /// <summary>data: the (already padded) images, (C, H, W) = (in_channels, sample_size, sample_size).</summary>
    public VaeTrainer(AutoencoderKLConfig vaeConfig, TrainConfig config, VaeObjective objective, ImageDataset data)
    {
        ArgumentNullException.ThrowIfNull(vaeConfig);
        ArgumentNullException.ThrowIfNull(data);
        config.Validate();
        objective.Validate();
        int f = 1 << (vaeConfig.BlockOutChannels.Length - 1);
        if (data.Channels != vaeConfig.InChannels || data.Height != vaeConfig.SampleSize || data.Width != vaeConfig.SampleSize)
            throw new ArgumentException($"data is ({data.Channels}, {data.Height}, {data.Width}) per image, the VAE expects ({vaeConfig.InChannels}, {vaeConfig.SampleSize}, {vaeConfig.SampleSize}) (in_channels, sample_size)");
        if (data.Height % f != 0) throw new ArgumentException($"image size {data.Height} is not a multiple of the VAE's downsampling factor {f}");
        if (config.BatchSize > data.Count) throw new ArgumentException($"batch_size {config.BatchSize} is larger than the dataset ({data.Count} images)");
        (VaeConfig, Config, Objective) = (vaeConfig, config, objective);

        var root = new Rng(config.Seed);                     // model init first: the weights depend only on the seed
        Model = new AutoencoderKL(vaeConfig, root.Fork());
        _dataRng = root.Fork();
        _noiseRng = root.Fork();
        Flat = Model.PackParameters();
        Model.Train();
        var flatParam = Tensor.Wrap(Flat.Values, Flat.Values.Length);
        flatParam.Grad = Tensor.Wrap(Flat.Grads, Flat.Grads.Length);
        Optimizer = new AdamW([flatParam], new AdamWConfig(Lr: config.Lr, WeightDecay: config.WeightDecay));
        var rates = config.EmaRates();
        Ema = rates.Length > 0 ? new Ema([flatParam], rates[0]) : null;
        _data = new DataLoader(data, config.BatchSize, _dataRng);
        TrainImages = data.Count;
        (_c, _h, _w) = (data.Channels, data.Height, data.Width);
        _images = new float[config.BatchSize * data.ImageLength];
        var frozen = new List<(int, int)>();
        int at = 0;
        foreach (var (name, p) in Model.NamedParameters())
        {
            if (objective.FreezeEncoder && (name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal)))
                frozen.Add((at, p.Count));
            at += p.Count;
        }
        _frozen = [.. frozen];
    }

    /// <summary>Loads weights (e.g. a trained VAE folder's) into the model and resets the EMA to them: the start of a
    /// fine-tune. Call before the first step.</summary>
    public void InitFrom(IReadOnlyDictionary<string, (int[] Shape, float[] Data)> weights, string source)
    {
        if (StepCount != 0) throw new InvalidOperationException("InitFrom: the run has already taken steps");
        Model.LoadStateDict(weights, strict: true, source: source);
        Ema?.ImportState(new EmaState(Ema.Rate, [Flat.Values.ToArray()]));
    }

    /// <summary>Latent shape per image: (latent_channels, H/f, W/f).</summary>
    public int[] LatentShape => [VaeConfig.LatentChannels, _h >> (VaeConfig.BlockOutChannels.Length - 1), _w >> (VaeConfig.BlockOutChannels.Length - 1)];

    /// <summary>One optimisation step; throws NonFiniteTrainingException, changing nothing, when the loss or the gradient
    /// norm is not finite.</summary>
    public VaeStepStats Step()
    {
        var clock = Stopwatch.StartNew();
        using var scope = TensorScope.Begin();
        int B = Config.BatchSize;
        double lr = Config.LrAt(StepCount);
        _data.Next(_images, []);
        Model.ZeroGrad();
        var x = Tensor.FromSpan(_images, B, _c, _h, _w);                           // (B, C, H, W)
        var lat = LatentShape;
        var noise = Tensor.RandN([B, lat[0], lat[1], lat[2]], _noiseRng);         // (B, latent, h, w)
        var terms = VaeLoss.Compute(Model, x, noise, Objective.Loss, Objective.KlWeight);
        double loss = terms.Loss.Item(), rec = terms.Rec.Item(), kl = terms.Kl.Item();
        FlatTraining.CheckLoss(loss, StepCount, Who, "lower --lr, or raise --grad-clip");
        terms.Loss.Backward();
        foreach (var (start, length) in _frozen) Flat.Grads.AsSpan(start, length).Clear();
        double gradNorm = FlatTraining.ClipAndStep(Optimizer, Config.GradClip, lr, StepCount, Who);
        if (Ema is not null)
        {
            Ema.Update(EmaRateAt(StepCount));
            // r·x + (1 − r)·x is not always x in float32: without this the averaged copy of a frozen encoder drifts
            // by an ulp here and there, and vae/ (written from the EMA) would no longer encode as the init did.
            var shadow = Ema.Shadow[0].Data;
            foreach (var (start, length) in _frozen) Flat.Values.AsSpan(start, length).CopyTo(shadow.Slice(start, length));
        }
        Model.ZeroGrad();
        StepCount++;
        return new VaeStepStats(StepCount, loss, rec, kl, lr, gradNorm, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The EMA rate of the update after <paramref name="step"/> completed steps: min(rate, (1 + step)/(10 + step)).</summary>
    public double EmaRateAt(long step) => FlatTraining.EmaRate(Ema, step);

    /// <summary>The live weights, or the EMA's, as (name, shape, values) in parameter order.</summary>
    public IEnumerable<(string Name, int[] Shape, float[] Data)> ExportWeights(Ema? ema = null) => FlatTraining.Weights(Model, Flat.Values, ema);

    /// <summary>RNG states and data position (weights, optimizer and EMA are saved separately).</summary>
    public TrainerState ExportState() => new(StepCount, FlatTraining.States(Rngs), _data.GetState(), null);

    /// <summary>Restores <see cref="ExportState"/>'s state; a missing RNG is an InvalidDataException.</summary>
    public void ImportState(TrainerState state)
    {
        _data.SetState(state.Data);
        FlatTraining.Restore(state, Rngs);
        StepCount = state.Step;
    }

    (string, Rng)[] Rngs => [("data", _dataRng), ("noise", _noiseRng)];

    const string Who = "train-vae: ";

    /// <summary>Throws when a weight or EMA value is not finite (never save those).</summary>
    public void CheckFinite() => FlatTraining.CheckFinite(Flat.Values, Ema, StepCount, Who);

    /// <summary>1 / std of posterior samples (all elements) of <paramref name="images"/> (N, C, H, W), encoded in batches
    /// by <paramref name="vae"/> (a model holding the EMA weights, usually), in batches of <paramref name="batch"/>.</summary>
    public static double ScalingFactor(AutoencoderKL vae, float[] images, int count, Rng rng, int batch = 64)
    {
        var c = vae.Config;
        int len = images.Length / count, S = (int)Math.Sqrt(len / c.InChannels);
        double sum = 0, sumSq = 0;
        long n = 0;
        using (Tensor.NoGrad())
            for (int start = 0; start < count; start += batch)
            {
                using var scope = TensorScope.Begin();
                int b = Math.Min(batch, count - start);
                var x = Tensor.FromSpan(images.AsSpan(start * len, b * len), b, c.InChannels, S, S);
                var z = vae.Encode(x).Sample(rng).ToArray();
                foreach (float v in z) { sum += v; sumSq += (double)v * v; }
                n += z.Length;
            }
        double mean = sum / n, var = sumSq / n - mean * mean;
        return 1.0 / Math.Sqrt(var * n / (n - 1));              // torch.std: unbiased
    }
}

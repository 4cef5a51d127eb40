// DDPM training of diffusers' UNet2DModel, one Step() at a time, as diffusers 0.27.2's train_unconditional.py does
// it (Ho et al. 2020, Algorithm 1): draw a batch x0 (random horizontal flips optional), t ~ U{0, …, T−1}, ε ~ N(0, I),
// x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε (the DDPMScheduler's add_noise), the UNet's output against the target of the
// scheduler's prediction_type — ε; v = √ᾱ_t ε − √(1−ᾱ_t) x0 (get_velocity); or x0 with the SNR weight ᾱ/(1−ᾱ)
// per image, as that script weights "sample" — mean squared error over all elements, back-propagation, global
// gradient-norm clipping, the learning rate of diffusers' LambdaLR schedules (DdpmObjective.LrFactor), AdamW,
// and EMAModel's warm-up decay (DdpmObjective.EmaDecay). Class labels feed num_class_embeds when the config has it.
// The same pieces as the other trainers (DataLoader, AdamW over one flat buffer, Ema, GradClip, a TensorScope per
// step); all randomness from seeded Rngs (data order, timesteps, noise, dropout) that DdpmCheckpoint saves, so a run
// resumes bit-exactly. A non-finite loss or gradient stops the step before anything changes.
using System.Diagnostics;
using DiffuSharp.Data;
using DiffuSharp.NN;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Training;

/// <summary>One DDPM step: the mean squared error, the learning rate used, the gradient norm before clipping.</summary>
public sealed record DdpmStepStats(long Step, double Loss, double Lr, double GradNorm, double Seconds);

/// <summary>DDPM training of diffusers' UNet2DModel as train_unconditional.py does it (Ho et al. 2020, Algorithm 1),
/// one <see cref="Step"/> at a time: noise, timestep and target from the scheduler's prediction_type, MSE, gradient
/// clipping, LambdaLR schedule, AdamW and EMA warm-up. All randomness comes from seeded Rngs that checkpoints save, so
/// a run resumes bit-exactly.</summary>
public sealed class DdpmTrainer
{
    readonly Rng _dataRng, _timeRng, _noiseRng, _dropoutRng;
    readonly DataLoader _data;
    readonly float[] _images;
    readonly int[] _labels;
    readonly int _c, _h, _w;

    /// <summary>The architecture being trained (its config.json).</summary>
    public UNet2DConfig UNetConfig { get; }
    /// <summary>The shared training settings (batch size, learning rate, steps, EMA rate, …).</summary>
    public TrainConfig Config { get; }
    /// <summary>The DDPM-specific settings: noise schedule, lr schedule, AdamW betas, EMA warm-up.</summary>
    public DdpmObjective Objective { get; }
    /// <summary>The network being trained (its EMA is <see cref="Ema"/>).</summary>
    public UNet2DModel Model { get; }
    /// <summary>The training noise schedule (ᾱ table, add_noise).</summary>
    public Scheduler NoiseScheduler { get; }
    /// <summary>Every parameter and gradient of <see cref="Model"/> packed into one buffer, which the optimizer and
    /// checkpoints run over.</summary>
    public FlatParameters Flat { get; }
    /// <summary>AdamW over the model's parameters.</summary>
    public AdamW Optimizer { get; }
    /// <summary>The EMA (max decay: the first rate of Config.EmaRate), or null when it is empty.</summary>
    public Ema? Ema { get; }
    /// <summary>Optimizer steps completed so far.</summary>
    public long StepCount { get; private set; }
    /// <summary>How many images the trainer draws from (a resumed run must get the same ones).</summary>
    public int TrainImages { get; }
    /// <summary>True when the UNet takes class labels (num_class_embeds).</summary>
    public bool ClassConditional => UNetConfig.NumClassEmbeds is not null;

    /// <summary>data: images (C, H, W) = (in_channels, sample_size, sample_size) in [-1, 1]; labelled when the UNet has
    /// num_class_embeds.</summary>
    public DdpmTrainer(UNet2DConfig unetConfig, TrainConfig config, DdpmObjective objective, ImageDataset data)
    {
        ArgumentNullException.ThrowIfNull(unetConfig);
        ArgumentNullException.ThrowIfNull(data);
        config.Validate();
        objective.Validate();
        Check(unetConfig, data);
        if (config.BatchSize > data.Count) throw new ArgumentException($"batch_size {config.BatchSize} is larger than the dataset ({data.Count} images)");
        if (config.Microbatch != -1) throw new ArgumentException("microbatch is not supported by the UNet2DModel trainer");
        (UNetConfig, Config, Objective) = (unetConfig, config, objective);
        NoiseScheduler = SchedulerFactory.Create(objective.Scheduler);

        var root = new Rng(config.Seed);                     // model init first: the weights depend only on the seed
        Model = new UNet2DModel(unetConfig, root.Fork());
        _dataRng = root.Fork();
        _timeRng = root.Fork();
        _noiseRng = root.Fork();
        _dropoutRng = root.Fork();
        Flat = Model.PackParameters();
        Model.Train();
        var flatParam = Tensor.Wrap(Flat.Values, Flat.Values.Length);
        flatParam.Grad = Tensor.Wrap(Flat.Grads, Flat.Grads.Length);
        Optimizer = new AdamW([flatParam], new AdamWConfig(Lr: config.Lr, Beta1: objective.AdamBeta1, Beta2: objective.AdamBeta2,
            Eps: objective.AdamEpsilon, WeightDecay: config.WeightDecay));
        var rates = config.EmaRates();
        Ema = rates.Length > 0 ? new Ema([flatParam], rates[0]) : null;
        _data = new DataLoader(data, config.BatchSize, _dataRng, objective.RandomFlip);
        TrainImages = data.Count;
        (_c, _h, _w) = (data.Channels, data.Height, data.Width);
        _images = new float[config.BatchSize * data.ImageLength];
        _labels = new int[ClassConditional ? config.BatchSize : 0];
    }

    /// <summary>Refuses data the UNet cannot be trained on, naming the config key.</summary>
    public static void Check(UNet2DConfig c, ImageDataset data)
    {
        int f = 1 << (c.BlockOutChannels.Length - 1);
        if (c.OutChannels != c.InChannels)
            throw new ArgumentException($"out_channels {c.OutChannels} differs from in_channels {c.InChannels}: the UNet must predict one value per input value (no learned variance)");
        if (data.Channels != c.InChannels)
            throw new ArgumentException($"the images have {data.Channels} channel(s), the UNet's in_channels is {c.InChannels}");
        if (c.SampleSize is int s && (data.Height != s || data.Width != s))
            throw new ArgumentException($"the images are {data.Height}×{data.Width}, the UNet's sample_size is {s}");
        if (data.Height % f != 0 || data.Width % f != 0)
            throw new ArgumentException($"image size {data.Height}×{data.Width} is not a multiple of {f} (the UNet halves it {c.BlockOutChannels.Length - 1} times)");
        if (c.NumClassEmbeds is int k)
        {
            if (data.Labels is null) throw new ArgumentException($"num_class_embeds {k} needs labelled images; this data has no labels");
            if (data.NumClasses > k) throw new ArgumentException($"num_class_embeds {k} is fewer than the data's {data.NumClasses} classes");
        }
    }

    /// <summary>The learning rate of the step about to be taken (0-based).</summary>
    public double LrAt(long step) => Config.Lr * Objective.LrFactor(step, Config.WarmupSteps, Config.TotalSteps);

    /// <summary>The DDPM loss of one batch (no update): x0 (B, C, H, W), timesteps (B), ε like x0, labels (B) or null.</summary>
    public Tensor Loss(Tensor x0, int[] timesteps, Tensor noise, int[]? labels, Rng? dropout = null)
        => Loss(Model, NoiseScheduler, x0, timesteps, noise, labels, dropout);

    /// <summary>The DDPM loss of <paramref name="model"/> under <paramref name="scheduler"/>'s ᾱ table and prediction type.</summary>
    public static Tensor Loss(UNet2DModel model, Scheduler scheduler, Tensor x0, int[] timesteps, Tensor noise, int[]? labels, Rng? dropout = null)
    {
        var ts = timesteps.Select(t => (double)t).ToArray();
        Tensor xt;
        using (Tensor.NoGrad()) xt = scheduler.AddNoise(x0, noise, ts);
        var output = model.Forward(xt, Tensor.FromArray(timesteps.Select(t => (float)t).ToArray(), timesteps.Length), labels, dropout);
        var ac = timesteps.Select(t => (float)scheduler.AlphasCumprod[t]).ToArray();
        switch (scheduler.Config.PredictionType)
        {
            case PredictionType.Epsilon:
                return (output - noise).Square().Mean();
            case PredictionType.VPrediction:
            {
                // get_velocity: √ᾱ ε − √(1 − ᾱ) x0, float32 coefficients
                var a = ScheduleMath.PerSample(ac.Select(v => (double)MathF.Sqrt(v)).ToArray(), x0.Rank);
                var s = ScheduleMath.PerSample(ac.Select(v => (double)MathF.Sqrt(1f - v)).ToArray(), x0.Rank);
                Tensor target;
                using (Tensor.NoGrad()) target = a * noise - s * x0;
                return (output - target).Square().Mean();
            }
            default:
            {
                var w = ScheduleMath.PerSample(ac.Select(v => (double)(v / (1f - v))).ToArray(), x0.Rank);   // SNR = ᾱ/(1 − ᾱ)
                return (w * (output - x0).Square()).Mean();
            }
        }
    }

    /// <summary>One training step: draws a batch, timesteps and noise, back-propagates the MSE, clips the gradient,
    /// steps AdamW at the scheduled learning rate and updates the EMA. Throws <see cref="NonFiniteTrainingException"/>
    /// before anything changes when the loss or gradient is not finite.</summary>
    public DdpmStepStats Step()
    {
        var clock = Stopwatch.StartNew();
        using var scope = TensorScope.Begin();
        int B = Config.BatchSize, T = NoiseScheduler.Config.NumTrainTimesteps;
        double lr = LrAt(StepCount);
        _data.Next(_images, _labels);
        Model.ZeroGrad();
        var x0 = Tensor.FromSpan(_images, B, _c, _h, _w);                         // (B, C, H, W)
        var t = new int[B];
        for (int i = 0; i < B; i++) t[i] = _timeRng.NextInt(T);
        var noise = Tensor.RandN([B, _c, _h, _w], _noiseRng);
        var loss = Loss(x0, t, noise, ClassConditional ? _labels : null, _dropoutRng);
        double value = loss.Item();
        FlatTraining.CheckLoss(value, StepCount, "", "lower --lr, or lower --grad-clip");
        loss.Backward();
        double gradNorm = FlatTraining.ClipAndStep(Optimizer, Config.GradClip, lr, StepCount, "");
        StepCount++;
        if (Ema is { } ema) ema.Update(Objective.EmaDecay(StepCount, ema.Rate));
        Model.ZeroGrad();
        return new DdpmStepStats(StepCount, value, lr, gradNorm, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The live weights, or the EMA's, as (name, shape, values) in parameter order.</summary>
    public IEnumerable<(string Name, int[] Shape, float[] Data)> ExportWeights(Ema? ema = null) => FlatTraining.Weights(Model, Flat.Values, ema);

    /// <summary>A new UNet2DModel (eval mode) holding the EMA weights (the live ones without an EMA).</summary>
    public UNet2DModel EmaModel()
    {
        var unet = new UNet2DModel(UNetConfig, new Rng(0));
        unet.LoadStateDict(ExportWeights(Ema).ToDictionary(w => w.Name, w => (w.Shape, w.Data)), strict: true, source: "EMA");
        unet.Eval();
        return unet;
    }

    /// <summary>RNG states and data position (weights, optimizer and EMA are saved separately).</summary>
    public TrainerState ExportState() => new(StepCount, FlatTraining.States(Rngs), _data.GetState(), null);

    /// <summary>Restores the step count, every RNG state and the data position from a checkpoint's trainer.json; throws
    /// <see cref="InvalidDataException"/> when the state is incomplete or invalid.</summary>
    public void ImportState(TrainerState state)
    {
        _data.SetState(state.Data);
        FlatTraining.Restore(state, Rngs);
        StepCount = state.Step;
    }

    (string, Rng)[] Rngs => [("data", _dataRng), ("timesteps", _timeRng), ("noise", _noiseRng), ("dropout", _dropoutRng)];

    /// <summary>Throws when a weight or EMA value is not finite (never save those).</summary>
    public void CheckFinite() => FlatTraining.CheckFinite(Flat.Values, Ema, StepCount, "");
}

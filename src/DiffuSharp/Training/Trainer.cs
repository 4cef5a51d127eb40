// The training loop of improved-diffusion (train_util.TrainLoop.run_step / forward_backward / optimize_normal),
// one Step() at a time: draw a batch, then per microbatch sample t with the schedule sampler, draw ε, compute the
// diffusion losses, feed them to a loss-aware sampler, and back-propagate the importance-weighted mean; then clip,
// set the lr (warm-up, linear anneal), AdamW step, EMA updates, zero the gradients.
// Deviations: each microbatch's loss is scaled by (its size / batch size), so the gradient is the full batch's
// mean whatever the microbatch (the reference sums the microbatch means), and each microbatch is back-propagated
// into zeroed gradients that are then added to the step's sum (so the sum is the same one ranks all-reduce, see
// Trainer.Distributed.cs); an lr warm-up and global-norm clipping are added; all randomness comes from five seeded
// Rngs (data order, timesteps, noise, dropout, labels) that a checkpoint saves, so training resumes bit-exactly.
// The objectives model.json may add (see ModelConfig): label dropout to the null label (class_dropout_prob, the
// fifth Rng "labels"), offset noise (noise_offset) and min-SNR-γ weighting (snr_gamma); with all three off, every
// draw is the one made without them.
// A microbatch whose loss is not finite is not back-propagated; the step then stops training or is skipped (see
// Trainer.Guard.cs), after every draw of the step was made, so the streams stay where an ordinary step leaves them.
using System.Diagnostics;
using DiffuSharp.Data;
using DiffuSharp.Diffusion;
using DiffuSharp.Distributed;
using DiffuSharp.Models;
using DiffuSharp.NN;

namespace DiffuSharp.Training;

/// <summary>What one step did. Losses are the importance-weighted means over the batch; Quartiles[q] the weighted
/// mean loss of the samples with t in the q-th quarter of 0..T−1 (NaN when none fell there), as log_loss_dict.</summary>
public sealed record StepStats(long Step, double Loss, double? Mse, double? Vb, double[] QuartileSums, int[] QuartileCounts,
    double Lr, double GradNorm, double Seconds, int BatchSize);

/// <summary>Everything but the tensors that a checkpoint needs to continue exactly.</summary>
public sealed record TrainerState(long Step, IReadOnlyDictionary<string, RngState> Rngs, DataLoaderState Data, LossSecondMomentState? Sampler);

/// <summary>
/// Trains a UNet diffusion model as improved-diffusion's TrainLoop does (AdamW, EMA, microbatches, schedule sampler):
/// <c>new Trainer(modelConfig, trainConfig, data).Run()</c> trains to <see cref="TrainConfig.TotalSteps"/>, logging to
/// <c>OutputFolder/log.jsonl</c>, saving checkpoints that resume bit-exactly, and writes the model folder
/// <c>OutputFolder/model</c> (EMA weights) at the end.
/// </summary>
public sealed partial class Trainer
{
    readonly float[] _images;
    readonly int[] _labels;
    readonly Rng _timestepRng, _noiseRng, _dropoutRng, _dataRng, _labelRng;
    readonly DataLoader _data;
    readonly int _c, _h, _w;

    /// <summary>The training settings.</summary>
    public TrainConfig Config { get; }
    /// <summary>The model's flags (its model.json).</summary>
    public ModelConfig ModelConfig { get; }
    /// <summary>The network being trained (its EMA copies are in <see cref="Emas"/>).</summary>
    public UNetModel Model { get; }
    /// <summary>The diffusion process (schedule tables, losses) the model is trained under.</summary>
    public GaussianDiffusion Diffusion { get; }
    /// <summary>The timestep sampler (uniform or loss-aware) the batches' t are drawn from.</summary>
    public ScheduleSampler Sampler { get; }
    /// <summary>AdamW over the model's flat parameter buffer.</summary>
    public AdamW Optimizer { get; }
    /// <summary>One EMA per rate of the config's ema_rate, in that order.</summary>
    public IReadOnlyList<Ema> Emas { get; }
    /// <summary>Every parameter and gradient of <see cref="Model"/> packed into one buffer, which the optimizer and
    /// checkpoints run over.</summary>
    public FlatParameters Flat { get; }

    /// <summary>Steps completed so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>The names of the model's classes when the data names them (written to the model folder's
    /// class_names.txt), else null.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>A fresh model (initialised from Seed) and optimizer over data, whose images must match the model's shape.</summary>
    /// <param name="world">The MPI job to train in (batch_size images per rank, see Trainer.Distributed.cs), or null for one process.</param>
    public Trainer(ModelConfig modelConfig, TrainConfig config, ImageDataset data, Mpi? world = null)
    {
        ArgumentNullException.ThrowIfNull(modelConfig);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(data);
        config.Validate();
        (Config, ModelConfig, World) = (config, modelConfig, world);
        if (data.Channels != modelConfig.InChannels || data.Height != modelConfig.ImageSize || data.Width != modelConfig.ImageSize)
            throw new ArgumentException($"data is ({data.Channels}, {data.Height}, {data.Width}) per image, the model expects ({modelConfig.InChannels}, {modelConfig.ImageSize}, {modelConfig.ImageSize}) (in_channels, image_size)");
        if (GlobalBatchSize > data.Count)
            throw new ArgumentException(Ranks == 1 ? $"batch_size {config.BatchSize} is larger than the dataset ({data.Count} images)"
                : $"the global batch, batch_size {config.BatchSize} × {Ranks} ranks, is larger than the dataset ({data.Count} images)");
        if (modelConfig.ClassCond && data.Labels is null)
            throw new ArgumentException("class_cond needs a labelled dataset, and this one has no labels");
        if (modelConfig.ClassCond && data.NumClasses > (modelConfig.ClassCount ?? 0))
            throw new ArgumentException($"the dataset has {data.NumClasses} classes, the model's num_classes is {modelConfig.ClassCount}");
        if (modelConfig.ClassCond && data.ClassNames is { } names)
        {
            if (names.Count != modelConfig.ClassCount)
                throw new ArgumentException($"the dataset has {names.Count} named classes ({string.Join(", ", names.Take(10))}{(names.Count > 10 ? ", …" : "")}), the model's num_classes is {modelConfig.ClassCount}: give num_classes {names.Count}");
            ClassNames = names;
        }

        // One root seed, forked in a fixed order: the model init first, so weights depend only on the seed.
        var root = new Rng(config.Seed);
        Model = new UNetModel(modelConfig.ToUNetConfig(), root.Fork());
        _dataRng = root.Fork();
        _timestepRng = root.Fork();
        _noiseRng = root.Fork();
        _dropoutRng = root.Fork();
        _labelRng = root.Fork();

        Flat = Model.PackParameters();
        Model.Train();
        Diffusion = DiffusionFactory.Create(modelConfig.ToDiffusionConfig() with { TimestepRespacing = "" });
        Sampler = ScheduleSampler.Create(config.ScheduleSampler, Diffusion);
        // One tensor over the flat buffer: optimizer state is two flat arrays, updated in one pass.
        var flatParam = Tensor.Wrap(Flat.Values, Flat.Values.Length);
        flatParam.Grad = Tensor.Wrap(Flat.Grads, Flat.Grads.Length);
        Optimizer = new AdamW([flatParam], new AdamWConfig(Lr: config.Lr, WeightDecay: config.WeightDecay));
        Emas = config.EmaRates().Select(r => new Ema([flatParam], r)).ToList();

        _data = new DataLoader(data, GlobalBatchSize, _dataRng);
        (_c, _h, _w) = (data.Channels, data.Height, data.Width);
        _images = new float[GlobalBatchSize * data.ImageLength];
        _labels = modelConfig.ClassCond ? new int[GlobalBatchSize] : [];
        InitShards();
    }

    /// <summary>One optimisation step over one batch. Every activation and non-leaf gradient lives in one
    /// <see cref="TensorScope"/>, so its storage is reused by the next step; only the numbers in the stats survive.</summary>
    public StepStats Step() => Step(stopRequested: false, saveRequested: false);

    /// <summary>One step; <paramref name="stopRequested"/> and <paramref name="saveRequested"/> are this rank's wish to
    /// stop, or to checkpoint, after it: under MPI shared with the others, so every rank agrees (see Trainer.Run.cs).</summary>
    internal StepStats Step(bool stopRequested, bool saveRequested)
    {
        var clock = Stopwatch.StartNew();
        using var scope = TensorScope.Begin();
        int B = Config.BatchSize, mb = Config.MicrobatchSize, len = _c * _h * _w, T = Diffusion.NumTimesteps;
        int G = GlobalBatchSize, first = RankIndex * B;         // this rank trains on [first, first + B) of the global batch
        double lr = Config.LrAt(StepCount);
        _data.Next(_images, _labels);                           // (G, C, H, W), the same on every rank
        Model.ZeroGrad();

        bool hasMse = false, hasVb = false;
        string? nonFinite = null;
        SkipShards(0, RankIndex);
        for (int start = first, k = 0; start < first + B; start += mb, k++)
        {
            int n = Math.Min(mb, first + B - start);
            var x0 = Tensor.FromSpan(_images.AsSpan(start * len, n * len), n, _c, _h, _w);              // (n, C, H, W)
            int[]? classes = _labels.Length == 0 ? null : _labels.AsSpan(start, n).ToArray();
            if (classes is not null && ModelConfig.NullLabel is int nullLabel)
                ClassDropout.Apply(classes, ModelConfig.ClassDropoutProb, nullLabel, _labelRng);
            var (t, w) = Sampler.Sample(n, _timestepRng);
            DiffusionModel model = (x, ts) => Model.Forward(x, ts, classes, _dropoutRng);
            var dropoutBefore = _dropoutRng.GetState();
            NoiseSource noise = ModelConfig.NoiseOffset > 0 ? OffsetNoise.Draw([n, _c, _h, _w], ModelConfig.NoiseOffset, _noiseRng) : _noiseRng;
            var terms = Diffusion.TrainingLosses(model, x0, t, noise, ModelConfig.SnrGamma);
            if (World is not null && CountDraws(dropoutBefore, _dropoutRng.GetState()) != DropoutDrawsPerForward())
                throw new InvalidOperationException("the model's forward took a different number of dropout draws than measured; ranks would share dropout masks");
            var perSample = terms.Loss.ToArray();                                                      // (n)
            bool finite = AllFinite(perSample);
            if (!finite) nonFinite ??= LossNonFinite(perSample);                                       // no backward, no sampler update
            else if (World is null && Sampler is LossSecondMomentResampler aware) aware.UpdateWithLocalLosses(t, perSample);

            // Σ_i w_i·L_i / G: summed over microbatches (and ranks) this is the global batch's weighted mean loss.
            if (finite) ((terms.Loss * Tensor.FromArray(w, n)).Sum() * (1.0 / G)).Backward();
            AccumulateMicrobatch(k, start + mb >= first + B);                                        // (zeros when skipped)

            var mse = terms.Mse?.ToArray();
            var vb = terms.Vb?.ToArray();
            (hasMse, hasVb) = (mse is not null, vb is not null);
            for (int i = 0; i < n; i++) Record(start + i, t[i], perSample[i], w[i], mse?[i], vb?[i]);
        }
        SkipShards(RankIndex + 1, Ranks);
        nonFinite = ShareStep(stopRequested, saveRequested, nonFinite);       // under MPI: the first non-finite loss or gradient of any rank, named

        double lossSum = 0, mseSum = 0, vbSum = 0;
        var qSum = new double[4];
        var qCount = new int[4];
        for (int i = 0; i < G; i++)
        {
            float wi = (float)_recW[i];
            double li = (float)_recLoss[i] * wi;
            lossSum += li;
            if (hasMse) mseSum += (float)_recMse[i] * wi;
            if (hasVb) vbSum += (float)_recVb[i] * wi;
            int q = Math.Min(3, 4 * (int)_recT[i] / T);
            qSum[q] += li;
            qCount[q]++;
        }

        // Clip (or, with clipping off, only measure) the global gradient norm, then update.
        double gradNorm = GradClip.ClipGlobalNorm(Optimizer.Parameters, Config.GradClip > 0 ? Config.GradClip : double.PositiveInfinity);
        if (nonFinite is not null || !double.IsFinite(gradNorm)) return NonFiniteStep(nonFinite ?? $"the gradient norm is {Finite.Describe(gradNorm)}", G, lr, clock);
        Optimizer.Lr = lr;
        Optimizer.Step();
        foreach (var ema in Emas) ema.Update();
        Model.ZeroGrad();
        StepCount++;
        return new StepStats(StepCount, lossSum / G, hasMse ? mseSum / G : null, hasVb ? vbSum / G : null, qSum, qCount,
            lr, gradNorm, clock.Elapsed.TotalSeconds, G);
    }

    /// <summary>The RNG states, data position and sampler history (for <see cref="Checkpoint"/>).</summary>
    public TrainerState ExportState() => new(
        StepCount,
        new Dictionary<string, RngState>
        {
            ["data"] = _dataRng.GetState(), ["timesteps"] = _timestepRng.GetState(),
            ["noise"] = _noiseRng.GetState(), ["dropout"] = _dropoutRng.GetState(), ["labels"] = _labelRng.GetState(),
        },
        _data.GetState(),
        (Sampler as LossSecondMomentResampler)?.GetState());

    /// <summary>Restores what <see cref="ExportState"/> returned (weights, optimizer and EMA are loaded separately).</summary>
    public void ImportState(TrainerState state)
    {
        if (state.Step < 0) throw new InvalidDataException($"trainer state: negative step {state.Step}");
        RngState Get(string name) => state.Rngs.TryGetValue(name, out var s) ? s : throw new InvalidDataException($"trainer state lacks the '{name}' RNG");
        _data.SetState(state.Data);                       // replays batches with the data Rng, so set that Rng after
        _dataRng.SetState(Get("data"));
        _timestepRng.SetState(Get("timesteps"));
        _noiseRng.SetState(Get("noise"));
        _dropoutRng.SetState(Get("dropout"));
        // Checkpoints written before label dropout existed have no "labels" Rng; they never drew from it.
        if (state.Rngs.TryGetValue("labels", out var labels)) _labelRng.SetState(labels);
        else if (ModelConfig.ClassDropoutProb > 0) throw new InvalidDataException("trainer state lacks the 'labels' RNG that class_dropout_prob needs");
        if (Sampler is LossSecondMomentResampler aware)
            aware.SetState(state.Sampler ?? throw new InvalidDataException("trainer state lacks the loss-second-moment sampler history"));
        StepCount = state.Step;
    }

    /// <summary>The EMA weights of the first rate (or the live weights without EMA) as named tensors.</summary>
    public IEnumerable<(string Name, int[] Shape, float[] Data)> ExportWeights(Ema? ema = null) => FlatTraining.Weights(Model, Flat.Values, ema);
}

// The base of diffusers' schedulers in C#: the surface of diffusers 0.27.2's SchedulerMixin subclasses
// (set_timesteps, timesteps, init_noise_sigma, scale_model_input, step, add_noise, order, set_begin_index) and the
// β / ᾱ tables every one of them builds from its config. Reference: src/diffusers/schedulers/scheduling_ddim.py
// and scheduling_utils.py. Deviations: timesteps are doubles (diffusers mixes int64 and float tensors: integral
// values here where it has ints); randomness comes in as a NoiseSource (a fixed tensor or an Rng), never a global
// generator; step options such as DDIM's eta are constructor arguments.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>One scheduler step: x_{t−1} and, where the scheduler computes one, its prediction of x0.</summary>
public sealed record SchedulerStepOutput(Tensor PrevSample, Tensor? PredOriginalSample);

/// <summary>
/// A diffusers scheduler. Use: <see cref="SetTimesteps"/>(n); x = noise · <see cref="InitNoiseSigma"/>; for each t in
/// <see cref="Timesteps"/>: out = model(<see cref="ScaleModelInput"/>(x, t), t); x = <see cref="Step"/>(out, t, x, noise).PrevSample.
/// Samples are (B, C, H, W) (any rank ≥ 1 with the batch first).
/// </summary>
public abstract class Scheduler
{
    /// <summary>Builds the β and ᾱ tables of <paramref name="config"/> (validated here).</summary>
    protected Scheduler(SchedulerConfig config)
    {
        config.Validate($"{config.ClassName} config");
        Config = config;
        Betas = ScheduleMath.Betas(config);
        AlphasCumprod = ScheduleMath.AlphasCumprod(Betas);
    }

    /// <summary>The configuration this scheduler was built from (what <c>scheduler_config.json</c> holds).</summary>
    public SchedulerConfig Config { get; }

    /// <summary>β_t, t = 0..T−1 (float32 values, as diffusers holds them).</summary>
    public double[] Betas { get; }

    /// <summary>ᾱ_t, t = 0..T−1 (float32 values, as diffusers holds them).</summary>
    public double[] AlphasCumprod { get; }

    /// <summary>Model calls per step (2 for Heun and KDPM2, whose <see cref="Timesteps"/> repeat each t).</summary>
    public virtual int Order => 1;

    /// <summary>The n of the last <see cref="SetTimesteps"/>; 0 before it.</summary>
    public int NumInferenceSteps { get; protected set; }

    /// <summary>The timesteps the model is called with, in order (fractional for σ-based schedules with Karras sigmas).</summary>
    public IReadOnlyList<double> Timesteps => _timesteps;
    double[] _timesteps = [];

    /// <summary>The schedule before any SetTimesteps (diffusers' __init__ state, which add_noise on a fresh instance uses).</summary>
    protected void SetInitialTimesteps(double[] timesteps) => _timesteps = timesteps;

    /// <summary>The σ table of σ-based schedulers (one longer than the timesteps, ending in 0); null for the others.</summary>
    public virtual IReadOnlyList<double>? Sigmas => null;

    /// <summary>The standard deviation of the initial noise x_T (1 for variance-preserving schedulers).</summary>
    public virtual double InitNoiseSigma => 1.0;

    /// <summary>The index into <see cref="Timesteps"/> of the next step, for schedulers that count steps; null otherwise
    /// or before the first step.</summary>
    public int? StepIndex { get; protected set; }

    /// <summary>Where the first step starts in <see cref="Timesteps"/> (img2img: diffusers' set_begin_index); null: found
    /// from the first timestep passed.</summary>
    public int? BeginIndex { get; private set; }

    /// <summary>Sets the n inference timesteps (and resets any state of a previous run).</summary>
    public void SetTimesteps(int numInferenceSteps)
    {
        if (numInferenceSteps < 1 || numInferenceSteps > Config.NumTrainTimesteps)
            throw new ArgumentException($"{Config.ClassName}: num_inference_steps must lie in 1..{Config.NumTrainTimesteps}, got {numInferenceSteps}");
        NumInferenceSteps = numInferenceSteps;
        StepIndex = null;
        BeginIndex = null;
        _timesteps = ComputeTimesteps(numInferenceSteps);
    }

    /// <summary>The timesteps for n steps; implementations also reset their per-run state here.</summary>
    protected abstract double[] ComputeTimesteps(int numInferenceSteps);

    /// <summary>Starts the run at <see cref="Timesteps"/>[<paramref name="beginIndex"/>] (img2img's strength).</summary>
    public void SetBeginIndex(int beginIndex)
    {
        if (beginIndex < 0 || beginIndex > _timesteps.Length)
            throw new ArgumentOutOfRangeException(nameof(beginIndex), $"begin index {beginIndex} outside 0..{_timesteps.Length}");
        BeginIndex = beginIndex;
    }

    /// <summary>The model input for <paramref name="sample"/> at <paramref name="timestep"/> (σ-based schedulers divide
    /// by √(σ² + 1)). sample: (B, C, H, W).</summary>
    public virtual Tensor ScaleModelInput(Tensor sample, double timestep) => sample;

    /// <summary>One reverse step from <paramref name="timestep"/>. modelOutput, sample: (B, C, H, W). Stochastic
    /// schedulers draw from <paramref name="noise"/> (a fixed tensor shaped like the sample, or an Rng).</summary>
    public abstract SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default);

    /// <summary>The forward process q(x_t | x_0) at per-sample <paramref name="timesteps"/> (B):
    /// √ᾱ_t · x0 + √(1 − ᾱ_t) · noise. original, noise: (B, C, H, W).</summary>
    public virtual Tensor AddNoise(Tensor original, Tensor noise, IReadOnlyList<double> timesteps)
    {
        CheckBatch(original, noise, timesteps);
        var a = new double[timesteps.Count];
        var s = new double[timesteps.Count];
        for (int i = 0; i < a.Length; i++)
        {
            float ac = (float)AlphasCumprod[TrainIndex(timesteps[i])];
            a[i] = MathF.Sqrt(ac);
            s[i] = MathF.Sqrt(1f - ac);          // float32 as diffusers: (1 − ᾱ) ** 0.5 on a float32 tensor
        }
        return ScheduleMath.PerSample(a, original.Rank) * original + ScheduleMath.PerSample(s, original.Rank) * noise;
    }

    /// <summary>An integral training timestep as an index into the tables, checked.</summary>
    protected int TrainIndex(double timestep)
    {
        int t = (int)timestep;
        if (t != timestep || t < 0 || t >= Config.NumTrainTimesteps)
            throw new ArgumentException($"{Config.ClassName}: timestep {timestep} is not an integer in 0..{Config.NumTrainTimesteps - 1}");
        return t;
    }

    /// <summary>Refuses a step before <see cref="SetTimesteps"/>.</summary>
    protected void RequireTimesteps()
    {
        if (NumInferenceSteps == 0)
            throw new InvalidOperationException($"{Config.ClassName}: call SetTimesteps before Step");
    }

    /// <summary>Checks that model output and sample have one shape.</summary>
    protected void CheckShapes(Tensor modelOutput, Tensor sample)
    {
        if (!ShapeUtil.Equal(modelOutput.ShapeSpan, sample.ShapeSpan))
            throw new ArgumentException($"{Config.ClassName}.Step: model output {ShapeUtil.Format(modelOutput.ShapeSpan)} and sample {ShapeUtil.Format(sample.ShapeSpan)} differ");
    }

    /// <summary>Checks AddNoise's arguments: equal shapes and one timestep per sample.</summary>
    protected void CheckBatch(Tensor original, Tensor noise, IReadOnlyList<double> timesteps)
    {
        if (!ShapeUtil.Equal(original.ShapeSpan, noise.ShapeSpan))
            throw new ArgumentException($"{Config.ClassName}.AddNoise: original {ShapeUtil.Format(original.ShapeSpan)} and noise {ShapeUtil.Format(noise.ShapeSpan)} differ");
        if (timesteps.Count != original.Dim(0))
            throw new ArgumentException($"{Config.ClassName}.AddNoise: {timesteps.Count} timesteps for a batch of {original.Dim(0)}");
    }

    /// <summary>x0 clipped (clip_sample) or dynamically thresholded (thresholding), as DDPM / DDIM do.</summary>
    protected Tensor ClipOrThreshold(Tensor predX0)
    {
        if (Config.Thresholding) return ScheduleMath.DynamicThreshold(predX0, Config.DynamicThresholdingRatio, Config.SampleMaxValue);
        if (Config.ClipSample) return predX0.Clamp(-Config.ClipSampleRange, Config.ClipSampleRange);
        return predX0;
    }
}

// The common part of diffusers' σ-parameterised ("k-diffusion") schedulers — LMS, Euler, Euler ancestral, Heun,
// KDPM2 and KDPM2 ancestral: x = x0 + σ ε with σ_t = √((1 − ᾱ_t)/ᾱ_t) (Karras et al. 2022, "Elucidating the Design
// Space of Diffusion-Based Generative Models", arXiv:2206.00364, the VP case of Table 1), the model called on
// x/√(σ² + 1), a step counter, begin index (img2img), init_noise_sigma and add_noise. Reference: diffusers 0.27.2
// scheduling_euler_discrete.py (index_for_timestep, _init_step_index, scale_model_input, init_noise_sigma,
// add_noise) and the "Copied from" versions of them in the other files.
// Precision: σ tables are float32 values (diffusers holds them in float32 tensors), timesteps float32 as well.
namespace DiffuSharp.Schedulers;

/// <summary>A scheduler whose state is a σ schedule (one σ per model call, then 0).</summary>
public abstract class SigmaScheduler : Scheduler
{
    double[] _sigmas;

    /// <param name="config">The scheduler config.</param>
    /// <param name="zeroSnrLastAlpha">With rescale_betas_zero_snr, replace ᾱ_T = 0 by 2⁻²⁴ so that σ_T is finite (Euler's rule).</param>
    protected SigmaScheduler(SchedulerConfig config, bool zeroSnrLastAlpha = false) : base(config)
    {
        if (zeroSnrLastAlpha && config.RescaleBetasZeroSnr) AlphasCumprod[^1] = Math.Pow(2, -24);
        TrainingSigmas = ScheduleMath.TrainingSigmas(AlphasCumprod);
        LogSigmas = ScheduleMath.LogFloat32(TrainingSigmas);
        // diffusers' __init__ state: all T training timesteps, descending, with their σ then 0
        int T = config.NumTrainTimesteps;
        var t = new double[T];
        _sigmas = new double[T + 1];
        for (int i = 0; i < T; i++) { t[i] = T - 1 - i; _sigmas[i] = TrainingSigmas[T - 1 - i]; }
        SetInitialTimesteps(t);
    }

    /// <summary>σ_t of the training timesteps t = 0..T−1 (float32 values).</summary>
    protected double[] TrainingSigmas { get; }

    /// <summary>log σ_t (float32), ascending: the table _sigma_to_t interpolates in.</summary>
    protected internal double[] LogSigmas { get; }

    /// <summary>The σ schedule of the current run: one σ per model-call timestep, then the final σ (usually
    /// 0).</summary>
    public override IReadOnlyList<double>? Sigmas => _sigmas;

    /// <summary>The σ schedule: one entry per timestep, then the final σ (0).</summary>
    protected double[] SigmaArray => _sigmas;

    /// <summary>max σ for "linspace" / "trailing" spacing, else √(max σ² + 1) (diffusers' rule).</summary>
    public override double InitNoiseSigma
    {
        get
        {
            float max = (float)_sigmas.Max();
            return Config.TimestepSpacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? max : MathF.Sqrt(max * max + 1f);
        }
    }

    /// <summary>The spaced timesteps (rounded to float32, as diffusers holds them) turned into the model-call timesteps
    /// and σ schedule by <see cref="BuildSchedule"/>.</summary>
    protected sealed override double[] ComputeTimesteps(int n)
    {
        var spaced = ScheduleMath.SpacedTimesteps(Config, n, discrete: false);
        for (int i = 0; i < n; i++) spaced[i] = (float)spaced[i];    // diffusers: float32 timesteps
        var (timesteps, sigmas) = BuildSchedule(spaced);
        _sigmas = sigmas;
        return timesteps;
    }

    /// <summary>The model-call timesteps and the σ schedule (float32 values, ending in the final σ) for the spaced
    /// float32 timesteps; also resets per-run state.</summary>
    protected abstract (double[] Timesteps, double[] Sigmas) BuildSchedule(double[] spacedTimesteps);

    /// <summary>σ interpolated linearly in t between training timesteps (numpy.interp), for each timestep.</summary>
    protected internal double[] InterpolatedSigmas(double[] timesteps) => [.. timesteps.Select(t => ScheduleMath.InterpIndex(t, TrainingSigmas))];

    /// <summary>Karras sigmas between the last and first of <paramref name="sigmas"/> (or the given bounds) and their
    /// fractional timesteps by _sigma_to_t.</summary>
    protected internal (double[] Timesteps, double[] Sigmas) Karras(double[] sigmas, int n, double? sigmaMin = null, double? sigmaMax = null)
    {
        var k = ScheduleMath.KarrasSigmas(sigmaMin ?? sigmas[^1], sigmaMax ?? sigmas[0], n);
        return ([.. k.Select(s => ScheduleMath.SigmaToT(s, LogSigmas))], k);
    }

    /// <summary>[σ…, final] rounded to float32 (diffusers' np.concatenate(...).astype(np.float32)).</summary>
    protected static double[] WithFinal(double[] sigmas, double final = 0)
    {
        var r = new double[sigmas.Length + 1];
        for (int i = 0; i < sigmas.Length; i++) r[i] = (float)sigmas[i];
        r[^1] = final;
        return r;
    }

    /// <summary>diffusers' index_for_timestep: the position of <paramref name="timestep"/> in the schedule (the second
    /// one where it appears twice, so that a run started mid-schedule does not skip a σ).</summary>
    protected int IndexForTimestep(double timestep)
    {
        int first = -1;
        for (int i = 0; i < Timesteps.Count; i++)
            if (Timesteps[i] == timestep)
            {
                if (first >= 0) return i;
                first = i;
            }
        if (first < 0) throw new ArgumentException($"{Config.ClassName}: timestep {timestep} is not in the schedule (pass one of Timesteps)");
        return first;
    }

    /// <summary>The step index, set on the first call from the begin index or the timestep.</summary>
    protected int CurrentIndex(double timestep)
    {
        StepIndex ??= BeginIndex ?? IndexForTimestep(timestep);
        return StepIndex.Value;
    }

    /// <summary>x / √(σ² + 1): the model sees unit-variance input. sample: (B, C, H, W).</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        float sigma = (float)_sigmas[CurrentIndex(timestep)];
        return sample / MathF.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>x0 + σ · noise, σ at each timestep's index (or at the current / begin index once a run has started,
    /// as diffusers does for img2img and inpainting). original, noise: (B, C, H, W).</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, IReadOnlyList<double> timesteps)
    {
        CheckBatch(original, noise, timesteps);
        var s = new double[timesteps.Count];
        for (int i = 0; i < s.Length; i++)
            s[i] = _sigmas[BeginIndex is null ? IndexForTimestep(timesteps[i]) : StepIndex ?? BeginIndex.Value];
        return original + noise * ScheduleMath.PerSample(s, original.Rank);
    }

    /// <summary>k-diffusion's denoised x0 from the model output at noise level σ: ε → x − σ ε; v → −σ/√(σ²+1)·v +
    /// x/(σ²+1); sample → itself.</summary>
    protected Tensor PredictX0(Tensor modelOutput, Tensor sample, double sigma) => Config.PredictionType switch
    {
        PredictionType.Epsilon => sample - sigma * modelOutput,
        PredictionType.VPrediction => modelOutput * (-sigma / Math.Sqrt(sigma * sigma + 1)) + Div(sample, sigma * sigma + 1),
        _ => modelOutput,
    };

    /// <summary>x / σ as a true float32 division (torch divides by the float32 σ; multiplying by a rounded 1/σ differs
    /// in the last bit, which the steps' cancellation x + d·(σ_next − σ) magnifies by σ: 1e-5 at σ ≈ 4096).</summary>
    protected static Tensor Div(Tensor x, double sigma) => x / Tensor.Scalar((float)sigma);

    /// <summary>Refuses a prediction type the diffusers class refuses.</summary>
    protected void RefusePrediction(PredictionType type)
    {
        if (Config.PredictionType == type)
            throw new InvalidDataException($"{Config.ClassName}: prediction_type '{SchedulerKeys.Spell(type)}' is not supported (diffusers raises NotImplementedError)");
    }
}

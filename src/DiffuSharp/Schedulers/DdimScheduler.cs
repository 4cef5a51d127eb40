// DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", arXiv:2010.02502) as diffusers 0.27.2's
// DDIMScheduler (src/diffusers/schedulers/scheduling_ddim.py): eq. (12) with σ_t(η) of eq. (16).
// Deviation: eta and use_clipped_model_output are constructor arguments (diffusers passes them to every step).
// use_clipped_model_output (off in diffusers' pipelines) re-derives ε from the clipped x0, as improved-diffusion's
// ddim_sample does.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' DDIMScheduler: deterministic at eta = 0, DDPM-like ancestral sampling at eta = 1.</summary>
public sealed class DdimScheduler : Scheduler
{
    readonly double _finalAlphaCumprod;

    /// <param name="config">A DDIMScheduler config (other classes' configs are read as diffusers' from_config does).</param>
    /// <param name="eta">η of eq. (16): 0 is DDIM, 1 the DDPM posterior variance.</param>
    /// <param name="useClippedModelOutput">ε for the direction term from the clipped / thresholded x0.</param>
    public DdimScheduler(SchedulerConfig config, double eta = 0, bool useClippedModelOutput = false) : base(config)
    {
        if (eta < 0) throw new ArgumentOutOfRangeException(nameof(eta), $"DDIM eta must be >= 0, got {eta}");
        Eta = eta;
        UseClippedModelOutput = useClippedModelOutput;
        // ᾱ before t = 0: 1 (set_alpha_to_one) or ᾱ_0
        _finalAlphaCumprod = config.SetAlphaToOne ? 1.0 : AlphasCumprod[0];
    }

    /// <summary>η of eq. (16).</summary>
    public double Eta { get; }

    /// <summary>diffusers' use_clipped_model_output: ε recomputed from the clipped x0.</summary>
    public bool UseClippedModelOutput { get; }

    /// <summary>The n timesteps spaced over the training range by <see cref="SchedulerConfig.TimestepSpacing"/>
    /// (integers, descending).</summary>
    protected override double[] ComputeTimesteps(int n) => ScheduleMath.SpacedTimesteps(Config, n, discrete: true);

    /// <summary>σ_t²/η² of eq. (16): (1 − ᾱ_prev)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_prev).</summary>
    public double Variance(int t, int prevT)
    {
        double a = AlphasCumprod[t], aPrev = prevT >= 0 ? AlphasCumprod[prevT] : _finalAlphaCumprod;
        return (1 - aPrev) / (1 - a) * (1 - a / aPrev);
    }

    /// <summary>One DDIM update (eq. 12): predict x0 (clipped or thresholded as configured), then x_{t'} = √ᾱ_{t'}·x0 +
    /// √(1 − ᾱ_{t'} − σ²)·ε + σ·z with σ = σ_t(η) of eq. (16); draws from <paramref name="noise"/> only when η > 0.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int t = TrainIndex(timestep);
        // 1. the previous timestep: t − T/n (diffusers' rule, also under "trailing" spacing)
        int prevT = t - Config.NumTrainTimesteps / NumInferenceSteps;
        // 2. ᾱ_t, ᾱ_{t−1}, 1 − ᾱ_t
        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = prevT >= 0 ? AlphasCumprod[prevT] : _finalAlphaCumprod;
        double betaProdT = 1 - alphaProdT;
        // 3. predicted x0 and ε from the model output, eq. (12)'s "predicted x0"
        double a = Math.Sqrt(alphaProdT), s = Math.Sqrt(betaProdT);
        var predX0 = ScheduleMath.PredictX0(Config.PredictionType, modelOutput, sample, a, s);
        var predEps = ScheduleMath.PredictEpsilon(Config.PredictionType, modelOutput, sample, a, s);
        // 4. clip or threshold x0
        predX0 = ClipOrThreshold(predX0);
        if (UseClippedModelOutput) predEps = (sample - a * predX0) / s;
        // 5. σ_t(η), eq. (16)
        double stdDevT = Eta * Math.Sqrt(Variance(t, prevT));
        // 6. "direction pointing to x_t" of eq. (12), then x_{t−1} without the noise
        var prev = Math.Sqrt(alphaProdPrev) * predX0 + Math.Sqrt(1 - alphaProdPrev - stdDevT * stdDevT) * predEps;
        // 7. the random part σ_t z
        if (Eta > 0) prev += stdDevT * noise.Draw(modelOutput, "DDIMScheduler.Step");
        return new SchedulerStepOutput(prev, predX0);
    }
}

// Euler's method on the probability-flow ODE dx/dσ = (x − x0(x, σ))/σ, with optional "churn" (Karras et al. 2022,
// arXiv:2206.00364, Algorithm 2 with S_churn, S_tmin, S_tmax, S_noise), as diffusers 0.27.2's EulerDiscreteScheduler
// (src/diffusers/schedulers/scheduling_euler_discrete.py) — k-diffusion's sample_euler.
// Deviations: the churn options are constructor arguments (diffusers passes them to every step); noise is drawn only
// when churn adds it (diffusers draws every step and discards it when γ = 0).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' EulerDiscreteScheduler ("Euler" in sd-webui).</summary>
public sealed class EulerDiscreteScheduler : SigmaScheduler
{
    readonly double _sChurn, _sTmin, _sTmax, _sNoise;

    /// <param name="config">An EulerDiscreteScheduler config.</param>
    /// <param name="sChurn">S_churn: total stochasticity spread over the steps (0: the deterministic ODE).</param>
    /// <param name="sTmin">S_tmin: churn only where σ ≥ S_tmin.</param>
    /// <param name="sTmax">S_tmax: churn only where σ ≤ S_tmax.</param>
    /// <param name="sNoise">S_noise: scale of the churn noise.</param>
    public EulerDiscreteScheduler(SchedulerConfig config, double sChurn = 0, double sTmin = 0, double sTmax = double.PositiveInfinity, double sNoise = 1)
        : base(config, zeroSnrLastAlpha: true)
    {
        if (config.TimestepType == TimestepType.Continuous && config.PredictionType != PredictionType.VPrediction)
            throw new InvalidDataException("EulerDiscreteScheduler: timestep_type 'continuous' is only defined for prediction_type 'v_prediction'");
        (_sChurn, _sTmin, _sTmax, _sNoise) = (sChurn, sTmin, sTmax, sNoise);
        if (IsContinuous) SetInitialTimesteps([.. SigmaArray[..^1].Select(s => (double)(0.25f * MathF.Log((float)s)))]);
    }

    bool IsContinuous => Config.TimestepType == TimestepType.Continuous && Config.PredictionType == PredictionType.VPrediction;

    /// <summary>The spaced timesteps and their σ (interpolated, Karras or EDM as configured), followed by a final σ of
    /// 0.</summary>
    protected override (double[] Timesteps, double[] Sigmas) BuildSchedule(double[] timesteps)
    {
        int n = timesteps.Length;
        double[] sigmas;
        if (Config.InterpolationType == InterpolationType.Linear)
            sigmas = InterpolatedSigmas(timesteps);
        else
        {
            // log_linear: n + 1 sigmas log-spaced from σ_0 to σ_max (torch.linspace in float32), as diffusers
            var l = ScheduleMath.Linspace(MathF.Log((float)TrainingSigmas[^1]), MathF.Log((float)TrainingSigmas[0]), n + 1);
            sigmas = [.. l.Select(v => (double)MathF.Exp((float)v))];
        }
        if (Config.UseKarrasSigmas)
        {
            (timesteps, sigmas) = Karras(sigmas, n, Config.SigmaMin, Config.SigmaMax);
            for (int i = 0; i < n; i++) timesteps[i] = (float)timesteps[i];
        }
        var full = WithFinal(sigmas);
        if (IsContinuous)   // EDM's c_noise = ¼ log σ
            timesteps = [.. full[..^1].Select(s => (double)(0.25f * MathF.Log((float)s)))];
        return (timesteps, full);
    }

    /// <summary>One Euler step dx = (x − x0)/σ · (σ_next − σ̂), with σ̂ raised by the optional churn (which then draws
    /// from <paramref name="noise"/>).</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int i = CurrentIndex(timestep);
        double sigma = SigmaArray[i];
        // 1. γ = min(S_churn/N, √2 − 1) inside [S_tmin, S_tmax]; σ̂ = σ(1 + γ)
        double gamma = _sTmin <= sigma && sigma <= _sTmax ? Math.Min(_sChurn / (SigmaArray.Length - 1), Math.Sqrt(2) - 1) : 0;
        double sigmaHat = sigma * (gamma + 1);
        // 2. raise the noise level to σ̂: x += √(σ̂² − σ²) ε
        if (gamma > 0) sample += noise.Draw(modelOutput, "EulerDiscreteScheduler.Step") * (_sNoise * Math.Sqrt(sigmaHat * sigmaHat - sigma * sigma));
        // 3. denoised x0 (for ε at σ̂, as diffusers)
        var predX0 = Config.PredictionType == PredictionType.Epsilon ? sample - sigmaHat * modelOutput : PredictX0(modelOutput, sample, sigma);
        // 4. d = (x − x0)/σ̂ and the Euler step to σ_{i+1}
        var derivative = Div(sample - predX0, sigmaHat);
        double dt = SigmaArray[i + 1] - sigmaHat;
        var prev = sample + derivative * dt;
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, predX0);
    }
}

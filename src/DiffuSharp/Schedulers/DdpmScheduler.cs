// DDPM ancestral sampling (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239,
// Algorithm 2 in its posterior-mean form, eqs. (6)–(7)) as diffusers 0.27.2's DDPMScheduler
// (src/diffusers/schedulers/scheduling_ddpm.py), with strided timesteps: x_{t−1} ~ q(x_{t'} | x_t, x0) for t' = t − T/n.
// Deviations: custom timestep lists are not offered; variance_type "fixed_large_log" is refused because diffusers'
// step takes the square root of a logarithm there (NaN).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' DDPMScheduler.</summary>
public sealed class DdpmScheduler : Scheduler
{
    /// <summary>A DDPM scheduler for <paramref name="config"/>; throws <see cref="InvalidDataException"/> for
    /// variance_type null or "fixed_large_log", where diffusers' own step fails or gives NaN.</summary>
    public DdpmScheduler(SchedulerConfig config) : base(config)
    {
        if (config.VarianceType is null or VarianceType.FixedLargeLog)
            throw new InvalidDataException($"DDPMScheduler: variance_type {(config.VarianceType is null ? "null" : "fixed_large_log")} is not supported (diffusers' step gives NaN or fails)");
    }

    /// <summary>The n timesteps spaced over the training range by <see cref="SchedulerConfig.TimestepSpacing"/>
    /// (integers, descending).</summary>
    protected override double[] ComputeTimesteps(int n) => ScheduleMath.SpacedTimesteps(Config, n, discrete: true);

    /// <summary>One ancestral DDPM step: x_{t'} drawn from the posterior q(x_{t'} | x_t, x0) with the configured
    /// variance type; no noise is added at the last step (t = 0).</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        int t = TrainIndex(timestep);
        // 0. a learned variance arrives as the second half of the channels
        Tensor? predictedVariance = null;
        if (Config.VarianceType is VarianceType.Learned or VarianceType.LearnedRange && modelOutput.Rank > 1
            && modelOutput.Dim(1) == 2 * sample.Dim(1))
        {
            var halves = modelOutput.Chunk(2, 1);
            modelOutput = halves[0];
            predictedVariance = halves[1];
        }
        CheckShapes(modelOutput, sample);
        // 1. t' = t − T/n and ᾱ_t, ᾱ_t', β̄ = 1 − ᾱ
        int prevT = t - Config.NumTrainTimesteps / NumInferenceSteps;
        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = prevT >= 0 ? AlphasCumprod[prevT] : 1.0;
        double betaProdT = 1 - alphaProdT, betaProdPrev = 1 - alphaProdPrev;
        // α and β of the strided step t → t': α = ᾱ_t / ᾱ_t'
        double currentAlphaT = alphaProdT / alphaProdPrev, currentBetaT = 1 - currentAlphaT;
        // 2. predicted x0, eq. (15)
        var predX0 = ScheduleMath.PredictX0(Config.PredictionType, modelOutput, sample, Math.Sqrt(alphaProdT), Math.Sqrt(betaProdT));
        // 3. clip or threshold x0
        predX0 = ClipOrThreshold(predX0);
        // 4. posterior mean μ̃(x_t, x0), eq. (7)
        double x0Coeff = Math.Sqrt(alphaProdPrev) * currentBetaT / betaProdT;
        double xtCoeff = Math.Sqrt(currentAlphaT) * betaProdPrev / betaProdT;
        var prev = x0Coeff * predX0 + xtCoeff * sample;
        // 5. add σ z, except at the last step (t = 0)
        if (t > 0)
        {
            var z = noise.Draw(modelOutput, "DDPMScheduler.Step");
            // β̃ = (1 − ᾱ_t')/(1 − ᾱ_t) β, eq. (7), floored at 1e-20 before its log
            double posteriorVar = Math.Max(betaProdPrev / betaProdT * currentBetaT, 1e-20);
            prev += Config.VarianceType switch
            {
                VarianceType.FixedSmall => Math.Sqrt(posteriorVar) * z,
                VarianceType.FixedSmallLog => Math.Exp(0.5 * Math.Log(posteriorVar)) * z,
                VarianceType.FixedLarge => Math.Sqrt(currentBetaT) * z,
                // learned: the model's second half is the variance itself
                VarianceType.Learned => (predictedVariance ?? throw LearnedMissing()).Sqrt() * z,
                _ => LearnedRangeStd(predictedVariance ?? throw LearnedMissing(), currentBetaT, posteriorVar) * z,
            };
        }
        return new SchedulerStepOutput(prev, predX0);
    }

    // learned_range: log σ² = f·log β + (1 − f)·log β̃ with f = (v + 1)/2 (improved DDPM eq. 15); σ = exp(½ log σ²)
    static Tensor LearnedRangeStd(Tensor v, double beta, double posteriorVar)
    {
        var frac = (v + 1) * 0.5;
        var logVar = frac * Math.Log(beta) + (1 - frac) * Math.Log(posteriorVar);
        return (logVar * 0.5).Exp();
    }

    ArgumentException LearnedMissing() =>
        new($"DDPMScheduler: variance_type {SchedulerKeys.Spell(Config.VarianceType!.Value)} needs a model output with twice the sample's channels");
}

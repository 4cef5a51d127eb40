// Ancestral Euler sampling (k-diffusion's sample_euler_ancestral; Karras et al. 2022, arXiv:2206.00364, with the
// ancestral split of each step into a deterministic move to σ_down and fresh noise of σ_up), as diffusers 0.27.2's
// EulerAncestralDiscreteScheduler (src/diffusers/schedulers/scheduling_euler_ancestral_discrete.py).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' EulerAncestralDiscreteScheduler ("Euler a" in sd-webui).</summary>
public sealed class EulerAncestralDiscreteScheduler : SigmaScheduler
{
    /// <summary>An Euler ancestral scheduler for <paramref name="config"/>; with RescaleBetasZeroSnr the last ᾱ (0)
    /// becomes 2⁻²⁴ so σ_max is finite, as diffusers does. Refuses prediction_type "sample".</summary>
    public EulerAncestralDiscreteScheduler(SchedulerConfig config) : base(config, zeroSnrLastAlpha: true)
        => RefusePrediction(PredictionType.Sample);

    /// <summary>The spaced timesteps and their training σ, interpolated in t, followed by a final σ of 0.</summary>
    protected override (double[] Timesteps, double[] Sigmas) BuildSchedule(double[] timesteps)
        => (timesteps, WithFinal(InterpolatedSigmas(timesteps)));

    /// <summary>One ancestral Euler step: split σ_next into σ_down and σ_up, move deterministically to σ_down, then add
    /// fresh noise of standard deviation σ_up from <paramref name="noise"/>.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int i = CurrentIndex(timestep);
        double sigmaFrom = SigmaArray[i], sigmaTo = SigmaArray[i + 1];
        // 1. denoised x0
        var predX0 = PredictX0(modelOutput, sample, sigmaFrom);
        // 2. split σ_to² = σ_down² + σ_up², σ_up² = σ_to²(σ_from² − σ_to²)/σ_from² (η = 1). In float32 as diffusers:
        //    σ_down² = σ_to² − σ_up² cancels, and with zero terminal SNR (σ_from ≈ 4096) float32's rounding of it
        //    moves x by 1e-5 relative
        float from = (float)sigmaFrom, to = (float)sigmaTo;
        float sigmaUp = MathF.Sqrt(to * to * (from * from - to * to) / (from * from));
        float sigmaDown = MathF.Sqrt(to * to - sigmaUp * sigmaUp);
        // 3. Euler step to σ_down along d = (x − x0)/σ
        var derivative = Div(sample - predX0, sigmaFrom);
        var prev = sample + derivative * (sigmaDown - sigmaFrom);
        // 4. fresh noise of σ_up
        prev += noise.Draw(modelOutput, "EulerAncestralDiscreteScheduler.Step") * sigmaUp;
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, predX0);
    }
}

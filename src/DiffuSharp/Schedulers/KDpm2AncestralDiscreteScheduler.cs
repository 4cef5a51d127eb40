// Ancestral DPM-Solver-2 (k-diffusion's sample_dpm_2_ancestral: each step splits σ_{i+1} into σ_down and fresh noise
// σ_up, then takes the DPM-Solver-2 midpoint step of KDpm2DiscreteScheduler to σ_down), as diffusers 0.27.2's
// KDPM2AncestralDiscreteScheduler (src/diffusers/schedulers/scheduling_k_dpm_2_ancestral_discrete.py). Two model
// calls per step; the noise is added after the second.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' KDPM2AncestralDiscreteScheduler ("DPM2 a" in sd-webui): 2 model calls per step.</summary>
public sealed class KDpm2AncestralDiscreteScheduler : SigmaScheduler
{
    double[] _sigmasInterpol = [], _sigmasUp = [], _sigmasDown = [];
    Tensor? _firstSample;   // null: the next call is the first of a step

    /// <summary>A KDPM2 ancestral scheduler for <paramref name="config"/>; refuses prediction_type "sample", as
    /// diffusers' step does not support it.</summary>
    public KDpm2AncestralDiscreteScheduler(SchedulerConfig config) : base(config)
    {
        RefusePrediction(PredictionType.Sample);
        SetTimesteps(config.NumTrainTimesteps);
    }

    /// <summary>2: each step calls the model at σ_i and at the interpolated midpoint σ.</summary>
    public override int Order => 2;

    /// <summary>The interleaved timesteps of the σ_i and midpoint calls, and their σ (from the up/down split of each
    /// step), followed by a final σ of 0.</summary>
    protected override (double[] Timesteps, double[] Sigmas) BuildSchedule(double[] timesteps)
    {
        var (ts, full, interpol) = KDpm2Schedule.Build(this, timesteps, ancestral: true, (up, down) => (_sigmasUp, _sigmasDown) = (up, down));
        _sigmasInterpol = interpol;
        _firstSample = null;
        return (ts, full);
    }

    /// <summary>sample / √(σ² + 1), with σ the step's σ_i on a first call and the midpoint σ on a second
    /// call.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        int i = CurrentIndex(timestep);
        float sigma = (float)(_firstSample is null ? SigmaArray[i] : _sigmasInterpol[i - 1]);
        return sample / MathF.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>The first call moves to the log-σ midpoint; the second takes the DPM-Solver-2 step to σ_down and adds
    /// fresh noise σ_up from <paramref name="noise"/>.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int i = CurrentIndex(timestep);
        bool first = _firstSample is null;
        // 1. σ_i, the midpoint σ_mid = √(σ_i σ_down) and the ancestral split σ_{i+1}² = σ_down² + σ_up²
        double sigma = first ? SigmaArray[i] : SigmaArray[i - 1];
        double sigmaMid = first ? _sigmasInterpol[i] : _sigmasInterpol[i - 1];
        // 2. denoised x0 at this call's noise level (σ_i, then σ_mid)
        var predX0 = PredictX0(modelOutput, sample, first ? sigma : sigmaMid);
        Tensor prev;
        if (first)
        {
            // 3a. Euler half-step to the midpoint
            _firstSample = sample;
            prev = sample + Div(sample - predX0, sigma) * (sigmaMid - sigma);
        }
        else
        {
            // 3b. full step to σ_down with the midpoint's derivative, then fresh noise of σ_up
            double sigmaUp = _sigmasUp[i - 1], sigmaDown = _sigmasDown[i - 1];
            prev = _firstSample! + Div(sample - predX0, sigmaMid) * (sigmaDown - sigma);
            prev += noise.Draw(modelOutput, "KDPM2AncestralDiscreteScheduler.Step") * sigmaUp;
            _firstSample = null;
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, null);
    }
}

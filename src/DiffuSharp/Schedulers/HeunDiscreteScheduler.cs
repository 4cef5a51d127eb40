// Heun's second-order method on the probability-flow ODE (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 with
// γ = 0), as diffusers 0.27.2's HeunDiscreteScheduler (src/diffusers/schedulers/scheduling_heun_discrete.py):
// two model calls per step, at σ_i and at σ_{i+1}, so the timesteps are t_0, t_1, t_1, …, t_{n−1}, t_{n−1} and the
// scheduler keeps the first call's derivative, dt and sample until the second call (its Order is 2).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' HeunDiscreteScheduler ("Heun" in sd-webui): 2 model calls per step.</summary>
public sealed class HeunDiscreteScheduler : SigmaScheduler
{
    // state between the first (Euler) and the second (correction) call of a step; null: next call is a first call
    Tensor? _prevDerivative, _firstSample;
    double _dt;

    /// <summary>A Heun scheduler for <paramref name="config"/>, with the full training schedule set until
    /// <see cref="Scheduler.SetTimesteps"/> is called.</summary>
    public HeunDiscreteScheduler(SchedulerConfig config) : base(config) => SetTimesteps(config.NumTrainTimesteps);

    /// <summary>2: each step calls the model twice, so every timestep after the first appears twice in
    /// <see cref="Scheduler.Timesteps"/>.</summary>
    public override int Order => 2;

    bool InFirstOrder => _firstSample is null;

    /// <summary>The interleaved timesteps t_0, t_1, t_1, …, t_{n−1}, t_{n−1} and their σ, followed by a final σ of 0;
    /// resets the stored first-call state.</summary>
    protected override (double[] Timesteps, double[] Sigmas) BuildSchedule(double[] timesteps)
    {
        int n = timesteps.Length;
        var sigmas = InterpolatedSigmas(timesteps);
        if (Config.UseKarrasSigmas) (timesteps, sigmas) = Karras(sigmas, n);
        var s = WithFinal(sigmas);                               // σ_0 … σ_{n−1}, 0 (float32)
        // [σ_0, σ_1, σ_1, …, σ_{n−1}, σ_{n−1}, 0] and [t_0, t_1, t_1, …, t_{n−1}, t_{n−1}]
        var full = new double[2 * n];
        var ts = new double[2 * n - 1];
        full[0] = s[0]; ts[0] = timesteps[0];
        for (int i = 1; i < n; i++)
        {
            full[2 * i - 1] = full[2 * i] = s[i];
            ts[2 * i - 1] = ts[2 * i] = timesteps[i];
        }
        full[^1] = s[n];
        _prevDerivative = _firstSample = null;
        return (ts, full);
    }

    /// <summary>The first call of a step stores the derivative and takes an Euler step to σ_{i+1}; the second averages
    /// the two derivatives (Heun's correction) from the stored sample.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int i = CurrentIndex(timestep);
        bool first = InFirstOrder;
        // 1. the step runs from σ (= σ̂, γ = 0) to σ_next; the second call sits at σ_next
        double sigma = first ? SigmaArray[i] : SigmaArray[i - 1];
        double sigmaNext = first ? SigmaArray[i + 1] : SigmaArray[i];
        // 2. denoised x0 at the noise level of this call
        var predX0 = PredictX0(modelOutput, sample, first ? sigma : sigmaNext);
        if (Config.ClipSample) predX0 = predX0.Clamp(-Config.ClipSampleRange, Config.ClipSampleRange);
        Tensor prev;
        if (first)
        {
            // 3a. Euler predictor: d_i = (x − x0)/σ, x' = x + d_i (σ_next − σ)
            var derivative = Div(sample - predX0, sigma);
            _dt = sigmaNext - sigma;
            _prevDerivative = derivative;
            _firstSample = sample;
            prev = sample + derivative * _dt;
        }
        else
        {
            // 3b. trapezoidal corrector: x_{i+1} = x_i + (d_i + d')/2 · (σ_next − σ)
            var derivative = (_prevDerivative! + Div(sample - predX0, sigmaNext)) * 0.5;
            prev = _firstSample! + derivative * _dt;
            _prevDerivative = _firstSample = null;
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, null);
    }
}

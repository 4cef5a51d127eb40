// Linear multistep sampling in σ (k-diffusion's sample_lms; Karras et al. 2022, arXiv:2206.00364, with the
// Adams–Bashforth-type coefficients of Lagrange polynomials through the last `order` derivatives integrated over
// [σ_i, σ_{i+1}]), as diffusers 0.27.2's LMSDiscreteScheduler (src/diffusers/schedulers/scheduling_lms_discrete.py).
// The coefficients are integrated by our Gauss–Kronrod quadrature (diffusers: scipy.integrate.quad); the integrand
// is a polynomial of degree order − 1 ≤ 3, integrated exactly by either.
// Deviation: the order (diffusers' step argument, default 4) is a constructor argument.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' LMSDiscreteScheduler ("LMS" in sd-webui).</summary>
public sealed class LmsDiscreteScheduler : SigmaScheduler
{
    readonly int _order;
    readonly List<Tensor> _derivatives = [];

    /// <param name="config">An LMSDiscreteScheduler config.</param>
    /// <param name="order">How many past derivatives the multistep formula uses (1–4).</param>
    public LmsDiscreteScheduler(SchedulerConfig config, int order = 4) : base(config)
    {
        if (order is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(order), $"LMS order must be 1..4, got {order}");
        _order = order;
        SetTimesteps(config.NumTrainTimesteps);
    }

    /// <summary>The spaced timesteps and their σ (interpolated or Karras), followed by a final σ of 0; clears the
    /// stored derivatives.</summary>
    protected override (double[] Timesteps, double[] Sigmas) BuildSchedule(double[] timesteps)
    {
        var sigmas = InterpolatedSigmas(timesteps);
        if (Config.UseKarrasSigmas) (timesteps, sigmas) = Karras(sigmas, timesteps.Length);
        _derivatives.Clear();
        return (timesteps, WithFinal(sigmas));
    }

    /// <summary>∫_{σ_i}^{σ_{i+1}} ℓ_k(τ) dτ, ℓ_k the Lagrange basis polynomial through σ_i, σ_{i−1}, …, σ_{i−order+1}
    /// that is 1 at σ_{i−k}.</summary>
    public double LmsCoefficient(int order, int i, int k)
    {
        var s = SigmaArray;
        double Basis(double tau)
        {
            double prod = 1;
            for (int j = 0; j < order; j++)
                if (j != k) prod *= (tau - s[i - j]) / (s[i - k] - s[i - j]);
            return prod;
        }
        return Quadrature.Integrate(Basis, s[i], s[i + 1]);
    }

    /// <summary>One linear multistep step: the derivatives of the last (up to order) steps combined with
    /// Lagrange-polynomial coefficients integrated over [σ_i, σ_{i+1}]. Deterministic.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int i = CurrentIndex(timestep);
        double sigma = SigmaArray[i];
        // 1. denoised x0
        var predX0 = PredictX0(modelOutput, sample, sigma);
        // 2. ODE derivative d_i = (x − x0)/σ, keeping the last `order`
        _derivatives.Add(Div(sample - predX0, sigma));
        if (_derivatives.Count > _order) _derivatives.RemoveAt(0);
        // 3. multistep coefficients for the available history
        int order = Math.Min(i + 1, _order);
        // 4. x_{i+1} = x_i + Σ_k c_k d_{i−k}
        var prev = sample;
        for (int k = 0; k < order; k++)
            prev += _derivatives[_derivatives.Count - 1 - k] * LmsCoefficient(order, i, k);
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, predX0);
    }
}

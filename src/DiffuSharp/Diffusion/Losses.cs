// Likelihood helpers for the variational bound: KL between Gaussians, the discretised Gaussian decoder
// log-likelihood of 8-bit images, and the per-sample mean over all other axes.
// Reference: openai/improved-diffusion, improved_diffusion/losses.py (normal_kl, approx_standard_normal_cdf,
// discretized_gaussian_log_likelihood, themselves from hojonathanho/diffusion diffusion_tf/utils.py) and
// improved_diffusion/nn.py (mean_flat). Papers: DDPM §3.3 (discrete decoder), iDDPM §2.
// Numerics: float32 tensor ops in the reference's order; Python scalars are rounded to float32 as PyTorch does,
// and x³ is x·x·x as PyTorch's pow(x, 3). All functions are differentiable.
// Deviation: the CDF approximation ½(1 + tanh u) is evaluated as the identical σ(2u), which avoids its
// cancellation in the lower tail (see ApproxStandardNormalCdf).
namespace DiffuSharp.Diffusion;

/// <summary>Likelihood terms of the variational bound (improved-diffusion's losses.py): Gaussian KL, the discretised
/// Gaussian log-likelihood of 8-bit images, and the per-sample mean over all other axes. All differentiable,
/// float32.</summary>
public static class DiffusionLosses
{
    static readonly Tensor ZeroScalar = Tensor.Scalar(0f);

    /// <summary>
    /// KL(N(μ₁, e^{logσ₁²}) ‖ N(μ₂, e^{logσ₂²})) = ½(−1 + logσ₂² − logσ₁² + e^{logσ₁² − logσ₂²} + (μ₁ − μ₂)² e^{−logσ₂²}),
    /// elementwise, in nats. Arguments broadcast against each other.
    /// </summary>
    public static Tensor NormalKl(Tensor mean1, Tensor logVar1, Tensor mean2, Tensor logVar2)
    {
        var d = mean1 - mean2;
        return 0.5 * ((-1.0 + logVar2) - logVar1 + (logVar1 - logVar2).Exp() + d.Square() * (-logVar2).Exp());
    }

    /// <summary>KL against N(mean2, e^{logVar2}) for scalar parameters (e.g. the prior N(0, I)).</summary>
    public static Tensor NormalKl(Tensor mean1, Tensor logVar1, double mean2, double logVar2)
        => NormalKl(mean1, logVar1, mean2 == 0 ? ZeroScalar : Tensor.Scalar((float)mean2), logVar2 == 0 ? ZeroScalar : Tensor.Scalar((float)logVar2));

    /// <summary>
    /// Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715 x³))), the tanh approximation of the standard normal CDF, evaluated as
    /// the identical σ(2u) = 1/(1 + e^{−2u}), u = √(2/π)(x + 0.044715 x³).
    /// </summary>
    public static Tensor ApproxStandardNormalCdf(Tensor x)
    {
        // ½(1 + tanh u) cancels where tanh u → −1 and keeps only an absolute error of ~1 ulp of 1 there; σ(2u) is the
        // same function with a relative error of a few ulps everywhere, so the decoder's small bin masses
        // cdf(x+) − cdf(x−) lose fewer digits (measured: closer to the float64 reference than PyTorch's own float32).
        var cube = x.Square() * x;                                          // x·x·x, as PyTorch's pow(x, 3)
        var u = Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * cube);
        return (u * 2.0).Sigmoid();
    }

    /// <summary>
    /// log p(x) of 8-bit data rescaled to [−1, 1] under N(means, e^{2·logScales}) integrated over each value's bin of
    /// width 2/255, with the edge bins open to ±∞ (DDPM §3.3). x, means: (B, C, H, W); logScales broadcasts. Nats.
    /// </summary>
    public static Tensor DiscretizedGaussianLogLikelihood(Tensor x, Tensor means, Tensor logScales)
    {
        if (!ShapeUtil.Equal(x.ShapeSpan, means.ShapeSpan))
            throw new ArgumentException($"DiscretizedGaussianLogLikelihood: x {ShapeUtil.Format(x.ShapeSpan)} and means {ShapeUtil.Format(means.ShapeSpan)} differ in shape");
        // 1. Standardised bin edges (x − μ ± 1/255) / σ.
        var centered = x - means;
        var invStd = (-logScales).Exp();
        var cdfPlus = ApproxStandardNormalCdf(invStd * (centered + 1.0 / 255.0));
        var cdfMin = ApproxStandardNormalCdf(invStd * (centered - 1.0 / 255.0));
        // 2. log of the bin mass; the lowest bin is (−∞, edge], the highest [edge, ∞). Probabilities are floored at
        //    1e-12 so that the log stays finite.
        var logCdfPlus = cdfPlus.Clamp(1e-12, double.PositiveInfinity).Log();
        var logOneMinusCdfMin = (1.0 - cdfMin).Clamp(1e-12, double.PositiveInfinity).Log();
        var logCdfDelta = (cdfPlus - cdfMin).Clamp(1e-12, double.PositiveInfinity).Log();
        // 3. Pick per element: x < −0.999 → lowest bin, x > 0.999 → highest, else the interior bin.
        var xs = x.Contiguous().Detach().Data;
        var low = new float[xs.Length];
        var high = new float[xs.Length];
        for (int i = 0; i < xs.Length; i++)
        {
            low[i] = xs[i] < -0.999f ? 1f : 0f;
            high[i] = xs[i] > 0.999f ? 1f : 0f;
        }
        var shape = x.Shape;
        return Tensor.Where(Tensor.Wrap(low, shape), logCdfPlus, Tensor.Where(Tensor.Wrap(high, shape), logOneMinusCdfMin, logCdfDelta));
    }

    /// <summary>The mean over every axis but the first: (B, …) → (B).</summary>
    public static Tensor MeanFlat(Tensor x)
    {
        if (x.Rank < 2) return x;
        var axes = new int[x.Rank - 1];
        for (int i = 0; i < axes.Length; i++) axes[i] = i + 1;
        return x.Mean(axes);
    }
}

// improved-diffusion's clip_denoised for any scheduler: the model's prediction is turned into x0, clamped to [−1, 1],
// and turned back into the model's own kind of output (ε, x0 or v) for the same noisy input. A scheduler that cannot
// clip x0 itself (Euler, Heun, LMS, PNDM, KDPM2: they have no thresholding in diffusers) then steps with the clipped
// prediction, as DDIMScheduler does with use_clipped_model_output and improved-diffusion's own samplers do.
// Why: improved-diffusion's schedules end at ᾱ_{T−1} ≈ 0 (cosine: 2.4e-9, σ ≈ 2·10⁴), where x0 = (x − √(1−ᾱ) ε)/√ᾱ
// multiplies an ε error of 1e-4 into a visible error in x0; clamped, the first steps stay on the data's range.
// The model input x is the variance-preserving sample at the call's timestep t (σ-based schedulers divide their
// sample by √(σ²+1) before the call, so it is): ᾱ_t from the model's own schedule, and for a fractional t (Karras σ,
// KDPM2's interpolated steps) from log σ interpolated linearly in t, the inverse of diffusers' _sigma_to_t.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Models;

/// <summary>improved-diffusion's clip_denoised for any scheduler: wraps a model so its prediction (ε, x0 or v) is the
/// one consistent with x0 clamped to [−1, 1], for schedulers that cannot clip x0 themselves (Euler, Heun, LMS, PNDM,
/// KDPM2).</summary>
public static class ClippedDenoiser
{
    /// <summary><paramref name="model"/> with its prediction made consistent with x0 clamped to [−1, 1]. Its timestep
    /// input is the scheduler's t × <paramref name="timestepScale"/>; its output is ε, x0 or v as
    /// <paramref name="config"/> says, with an optional learned-variance half after the first C channels left as is.</summary>
    public static DiffusionModel Wrap(ModelConfig config, DiffusionModel model, double timestepScale)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(model);
        var diffusion = config.ToDiffusionConfig();
        var betas = NoiseSchedule.GetNamedBetaSchedule(diffusion.NoiseSchedule, diffusion.DiffusionSteps);
        var logSigma = Array.ConvertAll(NoiseSchedule.AlphasCumprod(betas), a => 0.5 * Math.Log((1 - a) / a));
        var kind = diffusion.PredictXStart ? Kind.X0 : diffusion.PredictV ? Kind.V : Kind.Epsilon;
        return (x, t) =>
        {
            var y = model(x, t);
            int b = x.Dim(0), c = x.Dim(1);
            var ts = t.ToArray();
            var sa = new float[b];    // √ᾱ_t per batch item
            var sb = new float[b];    // √(1 − ᾱ_t)
            for (int i = 0; i < b; i++)
            {
                double a = AlphaBar(logSigma, ts[i] / timestepScale);
                sa[i] = (float)Math.Sqrt(a);
                sb[i] = (float)Math.Sqrt(1 - a);
            }
            var shape = new int[x.Rank];
            Array.Fill(shape, 1);
            shape[0] = b;
            var sqrtA = Tensor.FromArray(sa, shape);
            var sqrtB = Tensor.FromArray(sb, shape);
            var prediction = y.Dim(1) == c ? y : y.Slice(1, 0, c);
            var clipped = Clip(kind, x, prediction, sqrtA, sqrtB);
            return y.Dim(1) == c ? clipped : Tensor.Concat([clipped, y.Slice(1, c, y.Dim(1) - c)], 1);
        };
    }

    enum Kind { Epsilon, X0, V }

    static Tensor Clip(Kind kind, Tensor x, Tensor y, Tensor sqrtA, Tensor sqrtB)
    {
        // x = √ᾱ x0 + √(1−ᾱ) ε;  v = √ᾱ ε − √(1−ᾱ) x0
        var x0 = kind switch
        {
            Kind.Epsilon => (x - sqrtB * y) / sqrtA,
            Kind.X0 => y,
            _ => sqrtA * x - sqrtB * y,
        };
        var x0c = x0.Clamp(-1, 1);
        if (kind == Kind.X0) return x0c;
        var eps = (x - sqrtA * x0c) / sqrtB;
        return kind == Kind.Epsilon ? eps : sqrtA * eps - sqrtB * x0c;
    }

    /// <summary>ᾱ at a possibly fractional training timestep t: 1 / (1 + σ²) with log σ linear between integer steps.</summary>
    internal static double AlphaBar(double[] logSigma, double t)
    {
        int n = logSigma.Length;
        double c = Math.Clamp(t, 0, n - 1);
        int lo = (int)Math.Floor(c), hi = Math.Min(lo + 1, n - 1);
        double w = c - lo;
        double ls = (1 - w) * logSigma[lo] + w * logSigma[hi];
        return 1 / (1 + Math.Exp(2 * ls));
    }
}

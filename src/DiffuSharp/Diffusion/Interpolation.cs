// Interpolation between two images through the diffusion latent space, and trajectory helpers (the intermediate
// x_t and x̂_0 of a sampling run, thinned for display).
// Reference: hojonathanho/diffusion, diffusion_tf/diffusion_utils.py, GaussianDiffusion.interpolate and
// p_sample_loop_trajectory (seed 004; DDPM §4.3 and Fig. 8–9). The sampling steps are improved-diffusion's.
// Deviations: both images are diffused with the same noise (the reference draws two and leaves
// "use the same noise for both endpoints?" as a TODO) so that λ = 0 and λ = 1 reproduce each image's own latent
// exactly; the denoising can be DDPM or DDIM; trajectories are streamed, not stacked.
namespace DiffuSharp.Diffusion;

/// <summary>Which reverse process denoises an interpolated latent.</summary>
public enum InterpolationSampler
{
    /// <summary>Ancestral DDPM steps (the reference).</summary>
    Ddpm,
    /// <summary>DDIM steps with the given η (η = 0: deterministic).</summary>
    Ddim,
}

/// <summary>Interpolation between two images through the diffusion latent space (DDPM §4.3): both are diffused to step
/// t with the same noise, mixed, and denoised back with DDPM or DDIM steps.</summary>
public static class Interpolation
{
    /// <summary>
    /// Interpolates x_a and x_b at timestep index t and denoises the mix to an image: (B, C, H, W) → (B, C, H, W).
    /// t = 0 diffuses by one step before mixing; λ = 0.5 averages the diffused images.
    /// </summary>
    public static Tensor Interpolate(GaussianDiffusion diffusion, DiffusionModel model, Tensor xA, Tensor xB, double lambda, int t, Rng rng,
        Tensor? forwardNoise = null, InterpolationSampler sampler = InterpolationSampler.Ddpm, double eta = 0.0, bool clipDenoised = true)
    {
        Tensor? last = null;
        foreach (var step in InterpolateProgressive(diffusion, model, xA, xB, lambda, t, rng, forwardNoise, sampler, eta, clipDenoised)) last = step.Sample;
        return last!;
    }

    /// <summary>
    /// The interpolation as a stream of reverse steps from t down to 0:
    /// 1. x_t^a = q_sample(x_a, t, ε), x_t^b = q_sample(x_b, t, ε), one ε for both (forwardNoise, else drawn from rng);
    /// 2. x_t = (1 − λ) x_t^a + λ x_t^b;
    /// 3. denoise x_t with the chosen sampler from step t (its noise from rng).
    /// </summary>
    public static IEnumerable<SampleStep> InterpolateProgressive(GaussianDiffusion diffusion, DiffusionModel model, Tensor xA, Tensor xB, double lambda, int t,
        Rng rng, Tensor? forwardNoise = null, InterpolationSampler sampler = InterpolationSampler.Ddpm, double eta = 0.0, bool clipDenoised = true)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(rng);
        if (!ShapeUtil.Equal(xA.ShapeSpan, xB.ShapeSpan))
            throw new ArgumentException($"Interpolate: x_a {ShapeUtil.Format(xA.ShapeSpan)} and x_b {ShapeUtil.Format(xB.ShapeSpan)} differ in shape");
        if (!(lambda >= 0 && lambda <= 1)) throw new ArgumentOutOfRangeException(nameof(lambda), $"lambda must lie in [0, 1], got {lambda}");
        if (t < 0 || t >= diffusion.NumTimesteps) throw new ArgumentOutOfRangeException(nameof(t), $"timestep {t} is outside [0, {diffusion.NumTimesteps})");

        Tensor xt;
        using (Tensor.NoGrad())
        {
            var tBatch = GaussianDiffusion.Fill(xA.Dim(0), t);
            var eps = forwardNoise ?? Tensor.RandN(xA.Shape, rng);
            xt = MixLatents(diffusion.QSample(xA.Detach(), tBatch, eps), diffusion.QSample(xB.Detach(), tBatch, eps), lambda);
        }
        return sampler == InterpolationSampler.Ddim
            ? diffusion.DdimSampleLoopProgressive(model, xt.Shape, rng, xt, eta, clipDenoised, startStep: t)
            : diffusion.PSampleLoopProgressive(model, xt.Shape, rng, xt, clipDenoised, startStep: t);
    }

    /// <summary>Linear interpolation of two latents, (1 − λ) a + λ b.</summary>
    public static Tensor MixLatents(Tensor a, Tensor b, double lambda) => (1.0 - lambda) * a + lambda * b;

    /// <summary>
    /// Spherical interpolation per sample (Shoemake 1985; the DDIM paper interpolates its latents x_T this way):
    /// sin((1 − λ)θ)/sin θ · a + sin(λθ)/sin θ · b, θ the angle between a_i and b_i. Gaussian latents keep their norm,
    /// where a linear mix would shrink it towards the origin. Nearly parallel pairs (sin θ &lt; 1e-6) mix linearly.
    /// a, b: (B, …) → (B, …).
    /// </summary>
    public static Tensor SlerpLatents(Tensor a, Tensor b, double lambda)
    {
        if (!ShapeUtil.Equal(a.ShapeSpan, b.ShapeSpan))
            throw new ArgumentException($"SlerpLatents: {ShapeUtil.Format(a.ShapeSpan)} and {ShapeUtil.Format(b.ShapeSpan)} differ in shape");
        if (a.Rank < 1) throw new ArgumentException("SlerpLatents: latents must be (B, …)");
        var x = a.ToArray();
        var y = b.ToArray();
        int B = a.Dim(0), len = B == 0 ? 0 : x.Length / B;
        var r = new float[x.Length];
        for (int i = 0; i < B; i++)
        {
            // 1. θ from the cosine of the pair, in double.
            double dot = 0, na = 0, nb = 0;
            for (int k = i * len; k < (i + 1) * len; k++) { dot += (double)x[k] * y[k]; na += (double)x[k] * x[k]; nb += (double)y[k] * y[k]; }
            double cos = na > 0 && nb > 0 ? Math.Clamp(dot / Math.Sqrt(na * nb), -1, 1) : 1;
            double theta = Math.Acos(cos), sin = Math.Sin(theta);
            // 2. The two weights; linear when the pair is (anti)parallel and the arc is undefined.
            double wa = sin < 1e-6 ? 1 - lambda : Math.Sin((1 - lambda) * theta) / sin;
            double wb = sin < 1e-6 ? lambda : Math.Sin(lambda * theta) / sin;
            for (int k = i * len; k < (i + 1) * len; k++) r[k] = (float)(wa * x[k] + wb * y[k]);
        }
        return Tensor.Wrap(r, a.Shape);
    }
}

/// <summary>Sampling runs that yield their intermediate x_t and predicted x̂_0 step by step (DDPM's
/// p_sample_loop_trajectory), for progressive-generation figures.</summary>
public static class Trajectory
{
    /// <summary>
    /// Ancestral sampling that yields every step, where the first <paramref name="repeatNoiseSteps"/> steps (and the
    /// start x_T, when repeatNoiseSteps ≥ 0) use one noise image shared by the whole batch, so samples start alike
    /// and diverge later (the reference's p_sample_loop_trajectory). repeatNoiseSteps = −1: independent noise.
    /// </summary>
    public static IEnumerable<SampleStep> PSampleLoopTrajectory(GaussianDiffusion diffusion, DiffusionModel model, int[] shape, Rng rng,
        int repeatNoiseSteps = -1, bool clipDenoised = true)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(rng);
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length < 2) throw new ArgumentException($"PSampleLoopTrajectory: shape must be (B, C, …), got {ShapeUtil.Format(shape)}");
        return Run();

        IEnumerable<SampleStep> Run()
        {
            int T = diffusion.NumTimesteps;
            var x = NoiseLike(shape, rng, repeat: repeatNoiseSteps >= 0);
            using var outputs = new GaussianDiffusion.StepOutputs();
            for (int i = T - 1; i >= 0; i--)
            {
                // Steps T−1 … T−repeatNoiseSteps share their noise across the batch.
                bool repeat = T - i <= repeatNoiseSteps;
                var o = outputs.Run(() => diffusion.PSample(model, x, GaussianDiffusion.Fill(shape[0], i), NoiseLike(shape, rng, repeat), clipDenoised));
                yield return new SampleStep(i, o.Sample, o.PredXStart);
                x = o.Sample;
            }
        }
    }

    /// <summary>Keeps every <paramref name="stride"/>-th step and always the last one (for a strip of images).</summary>
    public static IEnumerable<SampleStep> Every(this IEnumerable<SampleStep> steps, int stride)
    {
        if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), $"stride must be positive, got {stride}");
        return Run();

        IEnumerable<SampleStep> Run()
        {
            int k = 0;
            SampleStep? pending = null;
            foreach (var s in steps)
            {
                if (k++ % stride == 0) { yield return s; pending = null; }
                else pending = s;
            }
            if (pending is not null) yield return pending;
        }
    }

    /// <summary>N(0, I) of the given shape; with repeat, one draw of a single sample copied across the batch.</summary>
    static Tensor NoiseLike(int[] shape, Rng rng, bool repeat)
    {
        if (!repeat) return Tensor.RandN(shape, rng);
        var one = (int[])shape.Clone();
        one[0] = 1;
        return Tensor.RandN(one, rng).Expand(shape).Contiguous();
    }
}

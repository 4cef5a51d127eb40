// Sampling: the ancestral DDPM step and loop, the DDIM step (any η) and loop, and the DDIM reverse step and loop
// (inversion x_0 → x_T). Loops are streams (IEnumerable<SampleStep>): each step is computed under NoGrad and
// handed out as it is made, so a 1000-step trajectory is never held in memory.
// Reference: openai/improved-diffusion, improved_diffusion/gaussian_diffusion.py (p_sample, p_sample_loop,
// p_sample_loop_progressive, ddim_sample, ddim_reverse_sample, ddim_sample_loop, ddim_sample_loop_progressive).
// Papers: DDPM Algorithm 2; Song et al. 2021 "Denoising Diffusion Implicit Models" (DDIM) eqs. 12 and 16.
// Memory: every step runs in its own TensorScope, so its activations go back to the pool when it ends; its outputs
// move to a holder that is released once the next step has consumed them (x_t is carried without new memory).
// Deviations: noise is explicit (a Tensor or an Rng) where the reference calls th.randn_like; DDIM with η = 0 adds
// no noise term (the reference adds 0 · noise, which can only flip the sign of a zero); the loops take an optional
// start step (for interpolation and inversion) and there is a reverse loop, which the reference leaves to callers.
// Numerics: per-sample DDIM coefficients are float32 scalars computed in the reference's order (its broadcast
// tensors hold one value per sample); σ = exp(½ log σ²) of a table variance uses PyTorch's float32 expf
// (ReferenceMath.ExpF), so p_sample with a fixed variance matches the reference bit for bit (DDIM needs no exp).
namespace DiffuSharp.Diffusion;

public partial class GaussianDiffusion
{
    /// <summary>
    /// One ancestral step x_t → x_{t−1} = μ_θ(x_t, t) + σ_t z (DDPM Algorithm 2, line 4), with no noise at t = 0.
    /// x: (B, C, H, W); t: (B); noise: a (B, C, H, W) tensor or an Rng.
    /// </summary>
    public SampleOutput PSample(DiffusionModel model, Tensor x, int[] t, NoiseSource noise, bool clipDenoised = true, Func<Tensor, Tensor>? denoisedFn = null)
    {
        var o = PMeanVariance(model, x, t, clipDenoised, denoisedFn);
        var z = noise.Draw(x, nameof(PSample));
        // 1. σ_t = exp(½ log σ²_t), masked to 0 where t = 0. A table variance is one float per sample: its exp is
        //    PyTorch's own float32 expf (ReferenceMath), so fixed-variance samples match the reference bit for bit.
        Tensor std;
        if (ModelVarType is ModelVarType.FixedLarge or ModelVarType.FixedSmall)
        {
            var logVar = o.LogVariance.ToArray();                            // (B, 1, 1, 1)
            var sigma = new float[t.Length];
            for (int b = 0; b < t.Length; b++) sigma[b] = t[b] != 0 ? ReferenceMath.ExpF(0.5f * logVar[b]) : 0f;
            std = PerSample(sigma, x.Rank);
        }
        else std = NonzeroMask(t, x.Rank) * (o.LogVariance * 0.5).Exp();
        // 2. x_{t−1} = μ + σ z.
        return new SampleOutput(o.Mean + std * z, o.PredXStart);
    }

    /// <summary>Runs every ancestral step from startStep (default T − 1) down to 0 and returns x_0. noise: the start
    /// x_{startStep} (else drawn from rng).</summary>
    public Tensor PSampleLoop(DiffusionModel model, int[] shape, Rng rng, Tensor? noise = null, bool clipDenoised = true, Func<Tensor, Tensor>? denoisedFn = null,
        int? startStep = null)
        => Last(PSampleLoopProgressive(model, shape, rng, noise, clipDenoised, denoisedFn, startStep)).Sample;

    /// <summary>
    /// The ancestral loop as a stream: one <see cref="SampleStep"/> per timestep, from <paramref name="startStep"/>
    /// (default T − 1) down to 0. x at the start is <paramref name="noise"/> (shape <paramref name="shape"/>), or a draw
    /// from <paramref name="rng"/>; every step's noise comes from rng.
    /// </summary>
    public IEnumerable<SampleStep> PSampleLoopProgressive(DiffusionModel model, int[] shape, Rng rng, Tensor? noise = null, bool clipDenoised = true,
        Func<Tensor, Tensor>? denoisedFn = null, int? startStep = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(rng);
        var x = StartingPoint(shape, rng, noise, nameof(PSampleLoopProgressive));
        int start = CheckStartStep(startStep, nameof(PSampleLoopProgressive));
        return Run();

        IEnumerable<SampleStep> Run()
        {
            using var outputs = new StepOutputs();
            for (int i = start; i >= 0; i--)
            {
                var t = Fill(shape[0], i);
                var o = outputs.Run(() => PSample(model, x, t, rng, clipDenoised, denoisedFn));
                yield return new SampleStep(i, o.Sample, o.PredXStart);
                x = o.Sample;
            }
        }
    }

    /// <summary>
    /// One DDIM step x_t → x_{t−1} (DDIM eq. 12) with σ_t(η) of eq. 16; η = 0 is the deterministic ODE, η = 1 the
    /// DDPM posterior variance. noise is needed only when η &gt; 0.
    /// </summary>
    public SampleOutput DdimSample(DiffusionModel model, Tensor x, int[] t, double eta = 0.0, NoiseSource noise = default, bool clipDenoised = true,
        Func<Tensor, Tensor>? denoisedFn = null)
    {
        if (!(eta >= 0)) throw new ArgumentOutOfRangeException(nameof(eta), $"DDIM eta must be >= 0, got {eta}");
        var o = PMeanVariance(model, x, t, clipDenoised, denoisedFn);
        // 1. ε re-derived from x̂_0, whatever the model predicts.
        var eps = PredictEpsFromXStart(x, t, o.PredXStart);
        // 2. Per sample, in float32 as the reference's broadcast tensors:
        //    σ_t = η √((1 − ᾱ_{t−1}) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_{t−1})       (eq. 16)
        //    x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1 − ᾱ_{t−1} − σ_t²) ε + σ_t z         (eq. 12)
        int B = t.Length;
        float[] cX0 = new float[B], cEps = new float[B], cNoise = new float[B];
        for (int b = 0; b < B; b++)
        {
            float ab = (float)_alphasCumprod[t[b]], abPrev = (float)_alphasCumprodPrev[t[b]];
            float sigma = (float)eta * MathF.Sqrt((1f - abPrev) / (1f - ab)) * MathF.Sqrt(1f - ab / abPrev);
            cX0[b] = MathF.Sqrt(abPrev);
            cEps[b] = MathF.Sqrt(1f - abPrev - sigma * sigma);
            cNoise[b] = t[b] != 0 ? sigma : 0f;                              // no noise at t = 0
        }
        var sample = o.PredXStart * PerSample(cX0, x.Rank) + PerSample(cEps, x.Rank) * eps;
        if (eta > 0) sample += PerSample(cNoise, x.Rank) * noise.Draw(x, nameof(DdimSample));
        return new SampleOutput(sample, o.PredXStart);
    }

    /// <summary>
    /// One DDIM reverse (inversion) step x_t → x_{t+1}: eq. 12 run forward with ᾱ_{t+1} and σ = 0. Only the
    /// deterministic path exists, so <paramref name="eta"/> must be 0.
    /// </summary>
    public SampleOutput DdimReverseSample(DiffusionModel model, Tensor x, int[] t, bool clipDenoised = true, Func<Tensor, Tensor>? denoisedFn = null,
        double eta = 0.0)
    {
        if (eta != 0) throw new ArgumentOutOfRangeException(nameof(eta), $"the DDIM reverse ODE is deterministic: eta must be 0, got {eta}");
        var o = PMeanVariance(model, x, t, clipDenoised, denoisedFn);
        // 1. ε re-derived from x̂_0.
        var eps = PredictEpsFromXStart(x, t, o.PredXStart);
        // 2. x_{t+1} = √ᾱ_{t+1} x̂_0 + √(1 − ᾱ_{t+1}) ε, per-sample coefficients in float32.
        int B = t.Length;
        float[] cX0 = new float[B], cEps = new float[B];
        for (int b = 0; b < B; b++)
        {
            float abNext = (float)_alphasCumprodNext[t[b]];
            cX0[b] = MathF.Sqrt(abNext);
            cEps[b] = MathF.Sqrt(1f - abNext);
        }
        return new SampleOutput(o.PredXStart * PerSample(cX0, x.Rank) + PerSample(cEps, x.Rank) * eps, o.PredXStart);
    }

    /// <summary>Runs DDIM from startStep (default T − 1) down to 0 and returns x_0. rng may be null when noise is given
    /// and η = 0.</summary>
    public Tensor DdimSampleLoop(DiffusionModel model, int[] shape, Rng? rng, Tensor? noise = null, double eta = 0.0, bool clipDenoised = true,
        Func<Tensor, Tensor>? denoisedFn = null, int? startStep = null)
        => Last(DdimSampleLoopProgressive(model, shape, rng, noise, eta, clipDenoised, denoisedFn, startStep)).Sample;

    /// <summary>
    /// DDIM as a stream, from <paramref name="startStep"/> (default T − 1) down to 0; x at the start is
    /// <paramref name="noise"/> or a draw from <paramref name="rng"/>, which also supplies the noise when η &gt; 0.
    /// </summary>
    public IEnumerable<SampleStep> DdimSampleLoopProgressive(DiffusionModel model, int[] shape, Rng? rng, Tensor? noise = null, double eta = 0.0,
        bool clipDenoised = true, Func<Tensor, Tensor>? denoisedFn = null, int? startStep = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!(eta >= 0)) throw new ArgumentOutOfRangeException(nameof(eta), $"DDIM eta must be >= 0, got {eta}");
        if (eta > 0 && rng is null) throw new ArgumentNullException(nameof(rng), $"DDIM with eta = {eta} draws noise every step: pass an Rng");
        if (noise is null && rng is null) throw new ArgumentNullException(nameof(rng), "DDIM needs a start x_T: pass noise or an Rng");
        var x = StartingPoint(shape, rng, noise, nameof(DdimSampleLoopProgressive));
        int start = CheckStartStep(startStep, nameof(DdimSampleLoopProgressive));
        return Run();

        IEnumerable<SampleStep> Run()
        {
            using var outputs = new StepOutputs();
            for (int i = start; i >= 0; i--)
            {
                var t = Fill(shape[0], i);
                var o = outputs.Run(() => DdimSample(model, x, t, eta, rng, clipDenoised, denoisedFn));
                yield return new SampleStep(i, o.Sample, o.PredXStart);
                x = o.Sample;
            }
        }
    }

    /// <summary>DDIM inversion: maps an image x_0 to the latent at <paramref name="targetStep"/> (default T − 1), from which
    /// <see cref="DdimSampleLoop"/> (η = 0, startStep = targetStep) reconstructs it.</summary>
    public Tensor DdimReverseLoop(DiffusionModel model, Tensor x0, bool clipDenoised = true, Func<Tensor, Tensor>? denoisedFn = null, int? targetStep = null)
    {
        var x = x0;
        foreach (var step in DdimReverseLoopProgressive(model, x0, clipDenoised, denoisedFn, targetStep)) x = step.Sample;
        return x;
    }

    /// <summary>
    /// DDIM inversion as a stream: reverse steps at t = 0, 1, …, targetStep − 1, each yielding x_{t+1}. As in the
    /// code built on the reference (its ddim_reverse_sample evaluated from t = 0), the image itself stands in for the
    /// latent at index 0 (ᾱ_0 ≈ 1), so targetStep reverse steps reach the latent at index targetStep.
    /// </summary>
    public IEnumerable<SampleStep> DdimReverseLoopProgressive(DiffusionModel model, Tensor x0, bool clipDenoised = true, Func<Tensor, Tensor>? denoisedFn = null,
        int? targetStep = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x0);
        int target = CheckStartStep(targetStep, nameof(DdimReverseLoopProgressive));
        return Run();

        IEnumerable<SampleStep> Run()
        {
            var x = x0.Detach();
            using var outputs = new StepOutputs();
            for (int i = 0; i < target; i++)
            {
                var t = Fill(x0.Dim(0), i);
                var o = outputs.Run(() => DdimReverseSample(model, x, t, clipDenoised, denoisedFn));
                yield return new SampleStep(i, o.Sample, o.PredXStart);
                x = o.Sample;
            }
        }
    }

    /// <summary>
    /// Runs the steps of a loop, each under NoGrad in its own <see cref="TensorScope"/>. A step's outputs move to a
    /// holder of their own; the previous step's holder is released once the new step has consumed its x. Disposing
    /// hands the last outputs to the GC, so they stay valid after the loop.
    /// </summary>
    internal sealed class StepOutputs : IDisposable
    {
        TensorScope? _held;

        public SampleOutput Run(Func<SampleOutput> step)
        {
            var holder = TensorScope.Holder();
            SampleOutput o;
            using (Tensor.NoGrad())
            using (TensorScope.Begin())
            {
                o = step();
                TensorScope.KeepIn(o.Sample, holder);
                TensorScope.KeepIn(o.PredXStart, holder);
            }
            _held?.Dispose();
            _held = holder;
            return o;
        }

        public void Dispose()
        {
            _held?.PersistAll();
            _held = null;
        }
    }

    static Tensor StartingPoint(int[] shape, Rng? rng, Tensor? noise, string op)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length < 2) throw new ArgumentException($"{op}: shape must be (B, C, …), got {ShapeUtil.Format(shape)}");
        if (noise is not null)
        {
            if (!ShapeUtil.Equal(noise.ShapeSpan, shape))
                throw new ArgumentException($"{op}: noise has shape {ShapeUtil.Format(noise.ShapeSpan)}, expected {ShapeUtil.Format(shape)}");
            return noise.Detach();
        }
        return Tensor.RandN(shape, rng ?? throw new ArgumentNullException(nameof(rng), $"{op}: pass noise or an Rng"));
    }

    int CheckStartStep(int? step, string op)
    {
        int s = step ?? NumTimesteps - 1;
        if (s < 0 || s >= NumTimesteps) throw new ArgumentOutOfRangeException(nameof(step), $"{op}: step {s} is outside [0, {NumTimesteps})");
        return s;
    }

    static SampleStep Last(IEnumerable<SampleStep> steps)
    {
        SampleStep? last = null;
        foreach (var s in steps) last = s;
        return last ?? throw new InvalidOperationException("the sampling loop ran no steps");
    }
}

// Properties of the diffusion that hold whatever the reference's numbers: the forward process inverts, KL is a
// divergence, DDIM inversion with a perfect model returns the image, the VB term of the true posterior is 0, and
// sampling is deterministic whatever the thread count. Tolerances come from float32 error analysis (u = 2^-24).
using DiffuSharp.Autograd;
using DiffuSharp.Diffusion;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Diffusion;

public class DiffusionPropertyTests(ITestOutputHelper output)
{
    const double U = 1.0 / (1 << 24);   // float32 unit roundoff

    static GaussianDiffusion Make(BetaSchedule schedule = BetaSchedule.Linear, int T = 1000, ModelMeanType mean = ModelMeanType.Epsilon,
        ModelVarType var = ModelVarType.FixedLarge)
        => new(NoiseSchedule.GetNamedBetaSchedule(schedule, T), mean, var, LossType.Mse);

    static Tensor Uniform(int[] shape, ulong seed, double lo = -1, double hi = 1) => Tensor.Rand(shape, new Rng(seed), (float)lo, (float)hi);

    /// <summary>
    /// A perfect ε-model for one image x0: from any x_t it returns the ε with x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, reading
    /// ᾱ at the timestep the model is given (the base process's, for a spaced diffusion).
    /// </summary>
    static DiffusionModel Oracle(GaussianDiffusion baseProcess, Tensor x0, double timestepScale = 1.0) => (x, ts) =>
    {
        var tv = ts.ToArray();
        int B = tv.Length;
        var a = new float[B];
        var s = new float[B];
        for (int b = 0; b < B; b++)
        {
            int t = (int)Math.Round(tv[b] / timestepScale);
            a[b] = (float)baseProcess.SqrtAlphasCumprod[t];
            s[b] = (float)baseProcess.SqrtOneMinusAlphasCumprod[t];
        }
        var shape = new int[x.Rank];
        Array.Fill(shape, 1);
        shape[0] = B;
        return (x - Tensor.Wrap(a, shape) * x0) / Tensor.Wrap(s, shape);
    };

    [Theory]
    [InlineData(BetaSchedule.Linear), InlineData(BetaSchedule.Cosine)]
    public void QSample_then_PredictXStartFromEps_returns_x0(BetaSchedule schedule)
    {
        var d = Make(schedule);
        var x0 = Uniform([6, 2, 5, 5], 1);
        var eps = Tensor.RandN([6, 2, 5, 5], new Rng(2));
        int[] t = [0, 1, 10, 100, 500, 999];
        var back = d.PredictXStartFromEps(d.QSample(x0, t, eps), t, eps).ToArray();
        var (xs, es) = (x0.ToArray(), eps.ToArray());
        int per = 2 * 5 * 5;
        for (int i = 0; i < xs.Length; i++)
        {
            // x_t = a x0 + b ε (3 roundings), then x̂0 = x_t/a − (b/a) ε (3 roundings, coefficients rounded to float32):
            // every rounding is relative to |x0| or to |(b/a) ε|, so |x̂0 − x0| ≤ 8u (|x0| + (b/a)|ε|). The ratio b/a
            // reaches 157 (linear) and 6e2 (cosine) at t = 999, which is why large t needs a looser absolute bound.
            int ti = t[i / per];
            double ratio = d.SqrtRecipm1AlphasCumprod[ti];
            double bound = 8 * U * (Math.Abs(xs[i]) + ratio * Math.Abs(es[i]));
            Assert.True(Math.Abs(back[i] - xs[i]) <= bound, $"t = {ti}: x̂0 = {back[i]}, x0 = {xs[i]}, |diff| {Math.Abs(back[i] - xs[i]):E3} > {bound:E3}");
        }
        // At small t the round trip is a few ulps: 1e-6 absolute for |x0| ≤ 1.
        for (int i = 0; i < 2 * per; i++) Assert.True(Math.Abs(back[i] - xs[i]) <= 1e-6);
    }

    [Fact]
    public void NormalKl_of_a_Gaussian_with_itself_is_zero_and_is_never_negative()
    {
        var rng = new Rng(3);
        var m = Tensor.RandN([4, 3, 6, 6], rng);
        var lv = Tensor.RandN([4, 3, 6, 6], rng, 0, 3);
        var self = DiffusionLosses.NormalKl(m, lv, m, lv).ToArray();
        var lvs = lv.ToArray();
        // ½((−1 + lv) − lv + e^0 + 0): what survives is the rounding of −1 + lv (≤ u (1 + |lv|)) and the float32
        // exp's error at 0 (a vector exp need not return exactly 1; ≤ 2 ulps), so |KL| ≤ 2u (2 + |lv|).
        for (int i = 0; i < self.Length; i++) Assert.True(Math.Abs(self[i]) <= 2 * U * (2 + Math.Abs(lvs[i])), $"KL(p‖p) = {self[i]}");

        var m2 = Tensor.RandN([4, 3, 6, 6], rng);
        var lv2 = Tensor.RandN([4, 3, 6, 6], rng, 0, 3);
        var kl = DiffusionLosses.NormalKl(m, lv, m2, lv2).ToArray();
        var (ma, mb, la, lb) = (m.ToArray(), m2.ToArray(), lvs, lv2.ToArray());
        for (int i = 0; i < kl.Length; i++)
        {
            // KL ≥ 0 exactly; in float32 it may dip below by the rounding of its largest summand.
            double d = ma[i] - mb[i];
            double scale = 1 + Math.Abs(la[i]) + Math.Abs(lb[i]) + Math.Exp(la[i] - lb[i]) + d * d * Math.Exp(-lb[i]);
            Assert.True(kl[i] >= -4 * U * scale, $"KL = {kl[i]} < 0");
            double exact = 0.5 * (-1 + lb[i] - la[i] + Math.Exp(la[i] - lb[i]) + d * d * Math.Exp(-lb[i]));
            Assert.True(Math.Abs(kl[i] - exact) <= 8 * U * scale, $"KL = {kl[i]}, float64 {exact}");
        }
    }

    [Theory]
    [InlineData(ModelMeanType.PreviousX, ModelVarType.Learned)]
    [InlineData(ModelMeanType.Epsilon, ModelVarType.FixedSmall)]
    [InlineData(ModelMeanType.StartX, ModelVarType.LearnedRange)]
    public void The_VB_term_is_zero_when_the_model_is_the_true_posterior(ModelMeanType mean, ModelVarType var)
    {
        var d = Make(BetaSchedule.Linear, 1000, mean, var);
        var x0 = Uniform([4, 2, 4, 4], 5, -0.9, 0.9);
        int[] t = [1, 10, 500, 999];
        var xt = d.QSample(x0, t, Tensor.RandN(x0.Shape, new Rng(6)));
        var truth = d.QPosteriorMeanVariance(x0, xt, t);
        var eps = Oracle(d, x0);
        DiffusionModel model = (x, ts) => mean switch
        {
            // x_{t−1} = μ̃, log σ² = log β̃ (clipped): exactly the posterior's tensors.
            ModelMeanType.PreviousX => Tensor.Concat([truth.Mean, truth.LogVariance.Expand(x.Shape)], 1),
            // the true ε: the mean is recomputed through x̂0, so it matches μ̃ up to rounding.
            ModelMeanType.Epsilon => eps(x, ts),
            // x0 itself, and v = −1, the lower end of the learned range: log σ² = log β̃.
            _ => Tensor.Concat([x0, Tensor.Full(x.Shape, -1f)], 1),
        };
        var vb = d.VbTermsBpd(model, x0, xt, t, clipDenoised: false).Output.ToArray();
        for (int b = 0; b < 4; b++)
        {
            // KL = ½((−1 + lv) − lv + e^{lv − lv} + d² e^{−lv}): the log-variances are the same floats, so what is left
            // is the rounding of −1 + lv (|lv| ≤ 13 here, u·14 ≈ 1e-6 nats) and d² / β̃ for a mean off by a few ulps.
            Assert.True(Math.Abs(vb[b]) <= 2e-6, $"t = {t[b]}: VB = {vb[b]} bits");
        }
    }

    [Theory]
    [InlineData("", 100)]          // 1000 steps, inverted to index 100
    [InlineData("ddim50", 49)]     // respaced, inverted all the way; the model sees the original timesteps, rescaled
    public void Ddim_inversion_with_a_perfect_model_returns_the_latent_and_the_image(string respacing, int target)
    {
        var baseProcess = Make();
        var d = DiffusionFactory.Create(new DiffusionConfig(TimestepRespacing: respacing));
        var x0 = Uniform([2, 3, 8, 8], 7, -0.9, 0.9);
        var eps = Tensor.RandN(x0.Shape, new Rng(8));
        var model = Oracle(baseProcess, x0);          // T = 1000: rescaled timesteps equal the original ones
        int B = x0.Dim(0);

        // 1. Inversion from the latent at index 0: along the DDIM path of a perfect model ε stays the same, so the
        //    latent at the target index is q_sample(x0, target, ε).
        var x0Latent = d.QSample(x0, GaussianDiffusion.Fill(B, 0), eps);
        var xT = d.DdimReverseLoop(model, x0Latent, targetStep: target);
        var expected = d.QSample(x0, GaussianDiffusion.Fill(B, target), eps);
        // Error: a step's fresh roundings (≈ 4u (|x| + |ε|)) enter ε̂ = ε + δ_k/s_k, so the next latent carries
        // δ_{k+1} = (s_{k+1}/s_k) δ_k: they grow by s_target/s_k, s = √(1 − ᾱ). Early steps (s_0 = 0.01) dominate, which
        // is why a long float32 inversion drifts (here ~1e-5 at index 100 of 1000; 3e-4 at 999) while an off-by-one
        // in ᾱ_{t+1} would move the latent by ~(s_{k+1} − s_k)|ε| ≈ 1e-3.
        double amp = 0, sTarget = d.SqrtOneMinusAlphasCumprod[target];
        for (int k = 1; k <= target; k++) amp += sTarget / d.SqrtOneMinusAlphasCumprod[k];
        double m = expected.ToArray().Max(Math.Abs) + eps.ToArray().Max(Math.Abs);
        double bound = 4 * U * m * (1 + amp);
        var (abs, _) = Compare.Errors(xT.ToArray(), expected.ToArray());
        output.WriteLine($"DDIM inversion to index {target} of {d.NumTimesteps}: max |error| {abs:E3}, bound {bound:E3}");
        Assert.True(abs <= bound, $"DDIM inversion to index {target}: max |error| {abs:E3} > bound {bound:E3}");

        // 2. DDIM (η = 0) from that latent reconstructs x0. A perfect ε-model gives x̂0 = x0 whatever the latent's
        //    error δ (√(1/ᾱ) δ − √(1/ᾱ − 1) δ/√(1 − ᾱ) = 0), so only the last step's roundings remain: a few ulps of 1.
        var back = d.DdimSampleLoop(model, x0.Shape, null, xT, startStep: target);
        output.WriteLine($"DDIM reconstruction: max |error| {Compare.Errors(back.ToArray(), x0.ToArray()).Abs:E3}");
        Compare.Close(back.ToArray(), x0.ToArray(), 1e-6, 0, "DDIM reconstruction");
    }

    [Fact]
    public void Sampling_loops_stream_lazily_outside_no_grad()
    {
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 50));
        int calls = 0;
        DiffusionModel model = (x, ts) => { calls++; Assert.False(GradMode.IsEnabled); return x * 0.1; };
        var steps = d.PSampleLoopProgressive(model, [2, 1, 4, 4], new Rng(10));
        Assert.Equal(0, calls);
        using var e = steps.GetEnumerator();
        Assert.True(e.MoveNext());
        Assert.True(e.MoveNext());
        Assert.Equal(2, calls);
        Assert.Equal(48, e.Current.Timestep);
        Assert.True(GradMode.IsEnabled);      // no-grad is scoped to each step, not held across yields
        Assert.Equal([49, 48, 47], d.DdimSampleLoopProgressive(model, [2, 1, 4, 4], new Rng(11)).Take(3).Select(s => s.Timestep));
        Assert.Equal(50, d.PSampleLoopProgressive(model, [1, 1, 2, 2], new Rng(12)).Count());
        Assert.Equal(10, d.DdimReverseLoopProgressive(model, Tensor.Zeros(1, 1, 2, 2), targetStep: 10).Count());
    }

    [Fact]
    public void Fixed_variance_PSample_at_t0_returns_the_mean_and_same_seed_gives_same_bits()
    {
        var d = Make(BetaSchedule.Linear, 100);
        DiffusionModel model = (x, ts) => x * 0.2;
        var x = Tensor.RandN([3, 2, 4, 4], new Rng(13));
        var o = d.PSample(model, x, [0, 0, 0], new Rng(14));
        Assert.Equal(d.PMeanVariance(model, x, [0, 0, 0]).Mean.ToArray(), o.Sample.ToArray());
        var a = d.PSampleLoop(model, [2, 1, 4, 4], new Rng(15));
        var b = d.PSampleLoop(model, [2, 1, 4, 4], new Rng(15));
        Assert.Equal(a.ToArray(), b.ToArray());
    }

    [Fact]
    public void Bad_arguments_are_refused_with_clear_messages()
    {
        var d = Make(BetaSchedule.Cosine, 10);
        DiffusionModel model = (x, ts) => x;
        var x = Tensor.Zeros(2, 1, 2, 2);
        Assert.Contains("eta must be >= 0", Assert.Throws<ArgumentOutOfRangeException>(() => d.DdimSample(model, x, [1, 1], -0.5)).Message);
        Assert.Contains("eta must be 0", Assert.Throws<ArgumentOutOfRangeException>(() => d.DdimReverseSample(model, x, [1, 1], eta: 0.5)).Message);
        Assert.Contains("2 timesteps", Assert.Throws<ArgumentException>(() => d.QSample(Tensor.Zeros(3, 1, 2, 2), [1, 2], x)).Message);
        Assert.Contains("outside [0, 10)", Assert.Throws<ArgumentOutOfRangeException>(() => d.QSample(x, [1, 10], x)).Message);
        Assert.Contains("needs noise", Assert.Throws<ArgumentException>(() => d.PSample(model, x, [1, 1], default)).Message);
        var learned = Make(BetaSchedule.Cosine, 10, var: ModelVarType.LearnedRange);
        Assert.Contains("(2, 2, 2, 2)", Assert.Throws<ArgumentException>(() => learned.PMeanVariance(model, x, [1, 1])).Message);
        Assert.Throws<ArgumentException>(() => new GaussianDiffusion([0.1, 0.0], ModelMeanType.Epsilon, ModelVarType.FixedLarge, LossType.Mse));
        Assert.Throws<ArgumentException>(() => new GaussianDiffusion([0.1, 1.5], ModelMeanType.Epsilon, ModelVarType.FixedLarge, LossType.Mse));
    }

    [Fact]
    public void ReferenceMath_ExpF_is_within_one_ulp_of_exp()
    {
        var rng = new Rng(16);
        for (int i = 0; i < 20000; i++)
        {
            float v = (float)(rng.NextDouble() * 180 - 100);
            float got = ReferenceMath.ExpF(v), exact = (float)Math.Exp(v);
            if (exact < 1e-37f) continue;   // subnormal results: not used for variances
            int ulps = Math.Abs(BitConverter.SingleToInt32Bits(got) - BitConverter.SingleToInt32Bits(exact));
            Assert.True(ulps <= 1, $"ExpF({v:R}) = {got:R}, exp = {exact:R} ({ulps} ulps)");
        }
        Assert.Equal(1f, ReferenceMath.ExpF(0f));
        Assert.Equal(float.PositiveInfinity, ReferenceMath.ExpF(200f));
        Assert.Equal(0f, ReferenceMath.ExpF(-200f));
    }
}

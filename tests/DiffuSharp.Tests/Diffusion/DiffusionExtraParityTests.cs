// Parity with openai/improved-diffusion beyond the shared fixture: learned and learned-range variances, x_0 and x_{t−1}
// mean types, every loss type, the gradient through the frozen mean, VB / prior / full-bound bits per dimension, a
// respaced and rescaled process, the likelihood helpers and the loss-aware sampler. Reference values:
// tests/DiffuSharp.Tests/Fixtures/diffusion_extra_ref.safetensors, written by make_diffusion_extra.py beside it
// (torch 1.13, improved-diffusion 1bc7bbb). The "model" there is arithmetic only (see the script).
using DiffuSharp.Diffusion;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Diffusion;

public class DiffusionExtraParityTests(ITestOutputHelper output)
{
    static DiffusionFixture F => DiffusionFixture.Extra;

    // Bit-exact: only + − × ÷ √ and clamp between the float64 tables and the result, in the reference's order.
    const double Exact = 0;

    // Results through exp/log/tanh (libm or .NET vector code vs PyTorch's SLEEF, each within ~1 ulp) and mean_flat
    // (the engine sums in double, PyTorch in float32) cannot be bit-exact, and some are cancellation-bound: a KL is a
    // sum of O(1)–O(e^{|Δ log σ²|}) terms, the decoder's bin mass cdf(x+) − cdf(x−) loses digits when it is small.
    // Their bound is the reference's own float32 error, measured against float64 (CheckAgainstFloat64).

    static DiffusionModel Affine(ModelVarType varType) => (x, ts) =>
    {
        var m = x * 0.5 + ts.Reshape(x.Dim(0), 1, 1, 1) * 0.001;
        return varType switch
        {
            ModelVarType.LearnedRange => Tensor.Concat([m, (x * 0.25 - 0.1).Clamp(-1, 1)], 1),
            ModelVarType.Learned => Tensor.Concat([m, x * 0.25 - 2.0], 1),
            _ => m,
        };
    };

    static ModelMeanType Mean(string s) => s switch { "eps" => ModelMeanType.Epsilon, "xstart" => ModelMeanType.StartX, _ => ModelMeanType.PreviousX };
    static ModelVarType Var(string s) => s switch
    {
        "learnedrange" => ModelVarType.LearnedRange, "learned" => ModelVarType.Learned,
        "fixedsmall" => ModelVarType.FixedSmall, _ => ModelVarType.FixedLarge,
    };
    static LossType Loss(string s) => s switch
    {
        "mse" => LossType.Mse, "rescaledmse" => LossType.RescaledMse, "kl" => LossType.Kl, _ => LossType.RescaledKl,
    };

    static GaussianDiffusion Diffusion(string mean, string var, string loss)
        => new(NoiseSchedule.GetNamedBetaSchedule(BetaSchedule.Linear, 100), Mean(mean), Var(var), Loss(loss));

    void Check(Tensor actual, string name, double atol, double rtol)
    {
        var expectedShape = F.Shape(name);
        var a = ShapeUtil.Equal(actual.Shape, expectedShape) ? actual : actual.Expand(expectedShape);
        var expected = F.F32(name);
        var (abs, rel) = Compare.Errors(a.ToArray(), expected);
        output.WriteLine($"{name}: max abs {abs:E3}, max rel {rel:E3}{(abs == 0 ? " (bit-exact)" : "")}");
        try { Compare.Close(a.ToArray(), expected, atol, rtol, name); }
        catch (Exception e) { _failures.Add(e.Message); }
    }

    /// <summary>
    /// For results through exp/log/tanh and means: the fixture holds the reference's float32 result and the same code
    /// run in float64. Our float32 result must be as close to the float64 value as PyTorch's float32 result is, within
    /// a factor 4 (the two round differently: SLEEF vs libm / .NET vector math, float vs double accumulation), plus
    /// 4 float32 ulps of the largest value in case the reference happens to be exact.
    /// </summary>
    void CheckAgainstFloat64(Tensor actual, string name)
    {
        var expectedShape = F.Shape(name);
        var a = (ShapeUtil.Equal(actual.Shape, expectedShape) ? actual : actual.Expand(expectedShape)).ToArray();
        var e32 = F.F32(name);
        var e64 = F.F64(name + ".f64");
        var ours = a.Select(v => (double)v).ToArray();
        var theirs = e32.Select(v => (double)v).ToArray();
        var (oursAbs, _) = Compare.Errors(ours, e64);
        var (refAbs, _) = Compare.Errors(theirs, e64);
        var (abs, rel) = Compare.Errors(a, e32);
        double scale = e64.Max(Math.Abs), budget = 4 * refAbs + 4 * scale * Math.Pow(2, -24);
        output.WriteLine($"{name}: vs reference f32 max abs {abs:E3}, max rel {rel:E3}{(abs == 0 ? " (bit-exact)" : "")}; " +
            $"distance from f64: ours {oursAbs:E3}, reference {refAbs:E3} (budget {budget:E3})");
        if (!(oursAbs <= budget))
            _failures.Add($"{name}: max |ours − f64| = {oursAbs:E3} exceeds 4 × the reference's {refAbs:E3} + 4 ulp(max |value| = {scale:G4})");
    }

    readonly List<string> _failures = [];

    void AssertAllClose() => Assert.True(_failures.Count == 0, string.Join("\n", _failures));

    [Theory]
    [InlineData("eps", "learnedrange", true)]
    [InlineData("xstart", "learned", true)]
    [InlineData("xprev", "fixedsmall", true)]
    [InlineData("eps", "fixedlarge", false)]
    public void PMeanVariance_matches_for_every_mean_and_variance_type(string mean, string var, bool clip)
    {
        var d = Diffusion(mean, var, "mse");
        var o = d.PMeanVariance(Affine(Var(var)), F.Tensor("x_t"), F.Int("t"), clip);
        bool learned = var.StartsWith("learned");
        Check(o.Mean, $"pmv.{mean}_{var}.mean", Exact, Exact);
        Check(o.PredXStart, $"pmv.{mean}_{var}.pred_xstart", Exact, Exact);
        Check(o.LogVariance, $"pmv.{mean}_{var}.log_variance", Exact, Exact);
        if (learned) Assert.Equal(F.Shape("x_t"), o.Variance.Shape);
        AssertAllClose();
    }

    [Theory]
    [InlineData("eps", "fixedlarge", "mse")]
    [InlineData("eps", "learnedrange", "rescaledmse")]
    [InlineData("xstart", "learned", "mse")]
    [InlineData("xprev", "fixedsmall", "kl")]
    [InlineData("eps", "learnedrange", "rescaledkl")]
    public void TrainingLosses_match_for_every_loss_type(string mean, string var, string loss)
    {
        var d = Diffusion(mean, var, loss);
        var terms = d.TrainingLosses(Affine(Var(var)), F.Tensor("x_start"), F.Int("t"), F.Tensor("noise"));
        string p = $"loss.{mean}_{var}_{loss}";
        CheckAgainstFloat64(terms.Loss, $"{p}.loss");
        bool isMse = loss.EndsWith("mse"), learned = var.StartsWith("learned");
        Assert.Equal(isMse, terms.Mse is not null);
        Assert.Equal(isMse && learned, terms.Vb is not null);
        if (terms.Mse is not null) CheckAgainstFloat64(terms.Mse, $"{p}.mse");
        if (terms.Vb is not null) CheckAgainstFloat64(terms.Vb, $"{p}.vb");
        AssertAllClose();
    }

    [Theory, InlineData("mse"), InlineData("rescaledmse")]
    public void The_gradient_through_the_frozen_mean_matches(string loss)
    {
        var d = Diffusion("eps", "learnedrange", loss);
        var w = F.Tensor("w_out").RequireGrad();
        var terms = d.TrainingLosses((x, ts) => w, F.Tensor("x_start"), F.Int("t"), F.Tensor("noise"));
        terms.Loss.Sum().Backward();
        CheckAgainstFloat64(terms.Loss, $"grad.eps_learnedrange_{loss}.loss");
        CheckAgainstFloat64(w.Grad!, $"grad.eps_learnedrange_{loss}.w_out");
        AssertAllClose();
    }

    [Fact]
    public void VbTermsBpd_and_PriorBpd_match()
    {
        var d = Diffusion("eps", "learnedrange", "mse");
        var o = d.VbTermsBpd(Affine(ModelVarType.LearnedRange), F.Tensor("x_start"), F.Tensor("x_t"), F.Int("t"), clipDenoised: true);
        CheckAgainstFloat64(o.Output, "vb.eps_learnedrange.output");
        Check(o.PredXStart, "vb.eps_learnedrange.pred_xstart", Exact, Exact);
        CheckAgainstFloat64(d.PriorBpd(F.Tensor("x_start")), "prior_bpd");
        AssertAllClose();
    }

    [Fact]
    public void Likelihood_helpers_match()
    {
        var (m1, lv1, m2, lv2) = (F.Tensor("kl.m1"), F.Tensor("kl.lv1"), F.Tensor("kl.m2"), F.Tensor("kl.lv2"));
        CheckAgainstFloat64(DiffusionLosses.NormalKl(m1, lv1, m2, lv2), "kl.out");
        CheckAgainstFloat64(DiffusionLosses.NormalKl(m1, lv1, 0.0, 0.0), "kl.prior");
        CheckAgainstFloat64(DiffusionLosses.ApproxStandardNormalCdf(F.Tensor("cdf.z")), "cdf.out");
        CheckAgainstFloat64(DiffusionLosses.DiscretizedGaussianLogLikelihood(F.Tensor("x_start"), F.Tensor("dgll.means"), F.Tensor("dgll.log_scales")),
            "dgll.out");
        AssertAllClose();
    }

    [Fact]
    public void A_respaced_rescaled_process_from_the_factory_matches()
    {
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 100, NoiseSchedule: "cosine", LearnSigma: true, TimestepRespacing: "25"));
        Assert.Equal(F.Int("spaced.timestep_map"), d.TimestepMap.ToArray());
        Compare.CloseRel(d.Betas, F.F64("spaced.betas"), 1e-12, "spaced.betas");
        var model = Affine(ModelVarType.LearnedRange);
        var (x, t, x0, noise) = (F.Tensor("x_t"), F.Int("spaced.t"), F.Tensor("x_start"), F.Tensor("noise"));

        var o = d.PMeanVariance(model, x, t);
        Check(o.Mean, "spaced.pmv.mean", Exact, Exact);
        Check(o.LogVariance, "spaced.pmv.log_variance", Exact, Exact);
        Check(o.PredXStart, "spaced.pmv.pred_xstart", Exact, Exact);

        var terms = d.TrainingLosses(model, x0, t, noise);
        CheckAgainstFloat64(terms.Loss, "spaced.loss.loss");
        CheckAgainstFloat64(terms.Mse!, "spaced.loss.mse");
        CheckAgainstFloat64(terms.Vb!, "spaced.loss.vb");

        Check(d.DdimReverseSample(model, x, t).Sample, "spaced.ddim_reverse_sample", Exact, Exact);
        // σ = exp(½ log σ²) of a learned variance goes through the engine's vector exp (PyTorch: SLEEF): ≤ 1 ulp of σ.
        CheckAgainstFloat64(d.PSample(model, x, t, noise).Sample, "spaced.p_sample");
        Check(d.DdimSampleLoop(model, x.Shape, null, x), "spaced.ddim_sample_loop", Exact, Exact);

        var bpd = d.CalcBpdLoop(model, x0, noise);
        CheckAgainstFloat64(bpd.TotalBpd, "spaced.calc_bpd.total_bpd");
        CheckAgainstFloat64(bpd.PriorBpd, "spaced.calc_bpd.prior_bpd");
        CheckAgainstFloat64(bpd.Vb, "spaced.calc_bpd.vb");
        CheckAgainstFloat64(bpd.XStartMse, "spaced.calc_bpd.xstart_mse");
        CheckAgainstFloat64(bpd.Mse, "spaced.calc_bpd.mse");
        AssertAllClose();
    }

    [Fact]
    public void LossSecondMomentResampler_weights_match()
    {
        var s = new LossSecondMomentResampler(5, historyPerTerm: 3, uniformProb: 0.01);
        var ts = F.Int("sampler.ts");
        var losses = F.F32("sampler.losses");
        Compare.CloseRel(s.Weights(), F.F64("sampler.weights.cold"), 0, "cold weights");
        s.UpdateWithLocalLosses(ts[..14], losses[..14]);
        Assert.False(s.WarmedUp);
        Compare.CloseRel(s.Weights(), F.F64("sampler.weights.partial"), 0, "weights before warm-up");
        s.UpdateWithLocalLosses(ts[14..], losses[14..]);
        Assert.True(s.WarmedUp);
        Compare.CloseRel(s.Weights(), F.F64("sampler.weights.warm"), 1e-15, "warm weights");
    }
}

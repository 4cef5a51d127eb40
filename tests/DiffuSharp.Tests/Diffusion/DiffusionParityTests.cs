// Parity with openai/improved-diffusion (shared/parity/diffusion_ref.safetensors, made by the peer with torch 1.13):
// the float64 schedule tables, and single steps (q_sample, p_mean_variance, p_sample, ddim_sample) in float32
// with a "model" that returns the fixed tensor eps, the peer's th.randn_like replaced by the fixed tensor noise.
using DiffuSharp.Diffusion;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Diffusion;

public class DiffusionParityTests(ITestOutputHelper output)
{
    static DiffusionFixture F => DiffusionFixture.Reference;

    // Schedule tables: float64 in both; only libm's log/cos/pow may differ from numpy's in the last bit.
    const double TableRtol = 1e-12;

    // Single float32 steps must be bit-exact: the coefficients are the peer's (float64 table → float32), every op
    // is one IEEE rounding (+ − × ÷ √, clamp) in the peer's order, and p_sample's σ = exp(½ log σ²) uses the same
    // float32 expf as PyTorch's CPU kernel (ReferenceMath.ExpF). A nonzero difference here means an op was
    // reordered or fused.
    const double StepAtol = 0, StepRtol = 0;

    // Respaced (ddim50) steps: the spaced betas are 1 − ᾱ_k/ᾱ_last recomputed into a new cumprod, equal to the
    // peer's to ~1e-16 relative; after the float32 rounding of each coefficient a 1-ulp flip of a coefficient
    // (2^-24 ≈ 6e-8 relative) times |x̂_0| ≤ 1 and |ε|·√(1−ᾱ) ≤ 5 stays far below 1e-5. The brief's bound is 1e-5.
    const double SpacedTol = 1e-5;

    static GaussianDiffusion Diffusion(string schedule, ModelVarType varType = ModelVarType.FixedLarge)
        => new(NoiseSchedule.GetNamedBetaSchedule(schedule, 1000), ModelMeanType.Epsilon, varType, LossType.Mse, rescaleTimesteps: false);

    static DiffusionModel ConstantEps()
    {
        var eps = F.Tensor("eps");
        return (x, t) => eps;
    }

    void Check(float[] actual, string name, double atol, double rtol)
    {
        var expected = F.F32(name);
        var (abs, rel) = Compare.Errors(actual, expected);
        output.WriteLine($"{name}: max abs {abs:E3}, max rel {rel:E3}{(abs == 0 ? " (bit-exact)" : "")}");
        Compare.Close(actual, expected, atol, rtol, name);
    }

    [Theory, InlineData("linear"), InlineData("cosine")]
    public void Schedule_tables_match_the_reference(string schedule)
    {
        var d = Diffusion(schedule);
        var tables = new (string Name, IReadOnlyList<double> Values)[]
        {
            ("betas", d.Betas), ("alphas_cumprod", d.AlphasCumprod), ("alphas_cumprod_prev", d.AlphasCumprodPrev),
            ("alphas_cumprod_next", d.AlphasCumprodNext), ("sqrt_alphas_cumprod", d.SqrtAlphasCumprod),
            ("sqrt_one_minus_alphas_cumprod", d.SqrtOneMinusAlphasCumprod), ("log_one_minus_alphas_cumprod", d.LogOneMinusAlphasCumprod),
            ("sqrt_recip_alphas_cumprod", d.SqrtRecipAlphasCumprod), ("sqrt_recipm1_alphas_cumprod", d.SqrtRecipm1AlphasCumprod),
            ("posterior_variance", d.PosteriorVariance), ("posterior_log_variance_clipped", d.PosteriorLogVarianceClipped),
            ("posterior_mean_coef1", d.PosteriorMeanCoef1), ("posterior_mean_coef2", d.PosteriorMeanCoef2),
        };
        foreach (var (name, values) in tables)
        {
            var expected = F.F64($"{schedule}.{name}");
            var (abs, rel) = Compare.Errors(values.ToArray(), expected);
            output.WriteLine($"{schedule}.{name}: max abs {abs:E3}, max rel {rel:E3}");
            Compare.CloseRel(values, expected, TableRtol, $"{schedule}.{name}");
        }
    }

    [Theory, InlineData("linear"), InlineData("cosine")]
    public void QSample_matches_the_reference(string schedule)
    {
        var d = Diffusion(schedule);
        var xt = d.QSample(F.Tensor("x_start"), F.Int("t"), F.Tensor("noise"));
        Check(xt.ToArray(), $"{schedule}.q_sample", StepAtol, StepRtol);
    }

    [Theory, InlineData("linear", true), InlineData("linear", false), InlineData("cosine", true), InlineData("cosine", false)]
    public void PMeanVariance_matches_the_reference(string schedule, bool clip)
    {
        var d = Diffusion(schedule);
        var o = d.PMeanVariance(ConstantEps(), F.Tensor("x_t"), F.Int("t"), clipDenoised: clip);
        string suffix = clip ? "clip" : "noclip";
        Check(o.Mean.ToArray(), $"{schedule}.p_mean.{suffix}", StepAtol, StepRtol);
        Check(o.PredXStart.ToArray(), $"{schedule}.pred_xstart.{suffix}", StepAtol, StepRtol);
    }

    [Theory, InlineData("linear", 0), InlineData("linear", 1), InlineData("cosine", 0), InlineData("cosine", 1)]
    public void DdimSample_matches_the_reference(string schedule, int eta)
    {
        var d = Diffusion(schedule);
        var o = d.DdimSample(ConstantEps(), F.Tensor("x_t"), F.Int("t"), eta, F.Tensor("noise"));
        Check(o.Sample.ToArray(), $"{schedule}.ddim_sample.eta{eta}", StepAtol, StepRtol);
    }

    [Theory, InlineData("linear", "fixedlarge"), InlineData("linear", "fixedsmall"), InlineData("cosine", "fixedlarge"), InlineData("cosine", "fixedsmall")]
    public void PSample_and_its_log_variance_match_the_reference(string schedule, string variance)
    {
        var d = Diffusion(schedule, variance == "fixedlarge" ? ModelVarType.FixedLarge : ModelVarType.FixedSmall);
        var x = F.Tensor("x_t");
        var t = F.Int("t");
        var logVar = d.PMeanVariance(ConstantEps(), x, t).LogVariance;
        Assert.Equal([4, 1, 1, 1], logVar.Shape);
        Check(logVar.ToArray(), $"{schedule}.p_log_variance.{variance}", 0, 0);
        var o = d.PSample(ConstantEps(), x, t, F.Tensor("noise"));
        Check(o.Sample.ToArray(), $"{schedule}.p_sample.{variance}", StepAtol, StepRtol);
    }

    [Theory, InlineData("linear"), InlineData("cosine")]
    public void Ddim50_respacing_matches_the_reference(string schedule)
    {
        var betas = NoiseSchedule.GetNamedBetaSchedule(schedule, 1000);
        var d = new SpacedDiffusion(Respacing.SpaceTimesteps(1000, "ddim50"), betas, ModelMeanType.Epsilon, ModelVarType.FixedLarge, LossType.Mse);
        Assert.Equal(F.Int($"{schedule}.ddim50.timestep_map"), d.TimestepMap.ToArray());
        Compare.CloseRel(d.Betas, F.F64($"{schedule}.ddim50.betas"), TableRtol, $"{schedule}.ddim50.betas");
        Compare.CloseRel(d.AlphasCumprod, F.F64($"{schedule}.ddim50.alphas_cumprod"), TableRtol, $"{schedule}.ddim50.alphas_cumprod");
        foreach (var name in new[] { "betas", "alphas_cumprod" })
        {
            var (abs, rel) = Compare.Errors((name == "betas" ? d.Betas : d.AlphasCumprod).ToArray(), F.F64($"{schedule}.ddim50.{name}"));
            output.WriteLine($"{schedule}.ddim50.{name}: max abs {abs:E3}, max rel {rel:E3}");
        }

        var x = F.Tensor("x_t");
        var t = F.Int($"{schedule}.ddim50.t");
        Check(d.DdimSample(ConstantEps(), x, t, 0.0).Sample.ToArray(), $"{schedule}.ddim50.ddim_sample.eta0", SpacedTol, SpacedTol);
        Check(d.PSample(ConstantEps(), x, t, F.Tensor("noise")).Sample.ToArray(), $"{schedule}.ddim50.p_sample", SpacedTol, SpacedTol);
    }
}

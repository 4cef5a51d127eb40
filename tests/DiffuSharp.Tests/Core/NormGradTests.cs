// Group norm, fused group norm + SiLU and layer norm: backward against central finite differences on odd shapes,
// forward against the double-precision reference kernels, fused-vs-composed parity, thread-count determinism and
// the shape errors.
using DiffuSharp;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

[Collection("Parallelism")]
public class NormGradTests
{
    public static TheoryData<int[], int> GroupNormCases => new()
    {
        { [2, 6, 5, 3], 1 }, { [2, 6, 5, 3], 2 }, { [2, 6, 5, 3], 3 },
        { [1, 3, 17], 3 }, { [3, 8], 2 }, { [1, 33, 3], 11 }, { [2, 4, 3, 3, 2], 2 },
    };

    [Theory, MemberData(nameof(GroupNormCases))]
    public void GroupNorm_backward_matches_finite_differences(int[] shape, int groups)
    {
        var rng = new Rng(100);
        int c = shape[1];
        GradCheck.Check(t => Tensor.GroupNorm(t[0], groups, t[1], t[2]),
            [GradCheck.Randn(rng, shape), GradCheck.Uniform(rng, 0.5f, 1.5f, c), GradCheck.Randn(rng, c)], rng);
    }

    [Theory, MemberData(nameof(GroupNormCases))]
    public void GroupNormSilu_backward_matches_finite_differences(int[] shape, int groups)
    {
        var rng = new Rng(101);
        int c = shape[1];
        GradCheck.Check(t => Tensor.GroupNormSilu(t[0], groups, t[1], t[2]),
            [GradCheck.Randn(rng, shape), GradCheck.Uniform(rng, 0.5f, 1.5f, c), GradCheck.Randn(rng, c)], rng);
    }

    [Fact]
    public void GroupNorm_without_affine_or_with_only_one_of_weight_and_bias_matches_finite_differences()
    {
        var rng = new Rng(102);
        GradCheck.Check(t => Tensor.GroupNorm(t[0], 2), [GradCheck.Randn(rng, 2, 4, 7)], rng);
        GradCheck.Check(t => Tensor.GroupNormSilu(t[0], 2, weight: t[1]), [GradCheck.Randn(rng, 2, 4, 7), GradCheck.Randn(rng, 4)], rng);
        GradCheck.Check(t => Tensor.GroupNormSilu(t[0], 4, bias: t[1]), [GradCheck.Randn(rng, 2, 4, 7), GradCheck.Randn(rng, 4)], rng);
    }

    [Fact]
    public void GroupNorm_of_an_intermediate_used_twice_matches_finite_differences()
    {
        // The first norm's backward writes the intermediate's fresh gradient, the second adds to it.
        var rng = new Rng(27);
        GradCheck.Check(t =>
        {
            var a = t[0] * 1.5;                                   // (3, 6, 5, 7), non-leaf
            return Tensor.GroupNormSilu(a, 3, t[1], t[2]) + Tensor.GroupNorm(a, 2, t[2], t[1]);
        }, [GradCheck.Randn(rng, 3, 6, 5, 7), GradCheck.Randn(rng, 6), GradCheck.Randn(rng, 6)], rng);
    }

    [Fact]
    public void GroupNorm_weight_and_bias_grads_alone_match_finite_differences()
    {
        // x does not require grad: the kernel skips dx and still produces dγ, dβ.
        var rng = new Rng(103);
        var x = GradCheck.Randn(rng, 3, 6, 5);
        GradCheck.Check(t => Tensor.GroupNormSilu(x, 3, t[0], t[1]), [GradCheck.Randn(rng, 6), GradCheck.Randn(rng, 6)], rng);
    }

    [Theory]
    [InlineData(2, 6, 5, 3, 3, 0f)]
    [InlineData(2, 8, 33, 17, 4, 0f)]
    [InlineData(3, 64, 14, 14, 32, 0f)]
    [InlineData(2, 8, 33, 17, 2, 100f)]       // mean far from zero: the shifted double statistics keep precision
    [InlineData(2, 8, 33, 17, 2, 10000f)]     // … even 10⁴ σ from zero
    [InlineData(1, 3, 1, 1, 3, 0f)]           // one element per group: variance 0, output β
    public void GroupNorm_forward_matches_double_reference(int n, int c, int h, int w, int groups, float offset)
    {
        var rng = new Rng(104);
        var x = Tensor.RandN([n, c, h, w], rng, mean: offset);
        var gamma = Tensor.Rand([c], rng, 0.5f, 1.5f); var beta = Tensor.RandN([c], rng);
        foreach (bool silu in new[] { false, true })
        {
            var y = silu ? Tensor.GroupNormSilu(x, groups, gamma, beta) : Tensor.GroupNorm(x, groups, gamma, beta);
            var expected = new float[x.Count];
            Norm.GroupNormReference(x.Data, gamma.Data, beta.Data, expected, n, c, h * w, groups, 1e-5, silu);
            GradCheck.AssertClose(expected, y.ToArray(), rtol: 1e-6, atol: 1e-6, silu ? "silu(gn)" : "gn");
        }
    }

    [Fact]
    public void GroupNormSilu_matches_composed_GroupNorm_then_Silu_forward_and_backward()
    {
        var rng = new Rng(105);
        var x = GradCheck.Randn(rng, 3, 12, 7, 5).RequireGrad();
        var gamma = GradCheck.Randn(rng, 12).RequireGrad();
        var beta = GradCheck.Randn(rng, 12).RequireGrad();
        var w = GradCheck.Randn(rng, 3, 12, 7, 5);

        var fused = Tensor.GroupNormSilu(x, 4, gamma, beta);
        var yf = fused.ToArray();
        (fused * w).Sum().Backward();
        float[] gx = x.Grad!.ToArray(), gg = gamma.Grad!.ToArray(), gb = beta.Grad!.ToArray();
        x.Grad = gamma.Grad = beta.Grad = null;

        var composed = Tensor.GroupNorm(x, 4, gamma, beta).Silu();
        var yc = composed.ToArray();
        (composed * w).Sum().Backward();

        GradCheck.AssertClose(yc, yf, 1e-6, 1e-6, "y");
        GradCheck.AssertClose(x.Grad!.ToArray(), gx, 1e-5, 1e-5, "dx");
        GradCheck.AssertClose(gamma.Grad!.ToArray(), gg, 1e-5, 1e-5, "dγ");
        GradCheck.AssertClose(beta.Grad!.ToArray(), gb, 1e-5, 1e-5, "dβ");
    }

    [Fact]
    public void GroupNorm_matches_composed_mean_and_variance()
    {
        // group_norm(x) = (x − mean) / √(var + eps) over (C/G, H, W), written with the engine's generic ops.
        var rng = new Rng(106);
        var x = GradCheck.Randn(rng, 2, 6, 4, 3).RequireGrad();
        var w = GradCheck.Randn(rng, 2, 6, 4, 3);
        var y = Tensor.GroupNorm(x, 3);
        (y * w).Sum().Backward();
        var gx = x.Grad!.ToArray(); x.Grad = null;
        var xg = x.Reshape(2, 3, 2, 4, 3);
        var composed = ((xg - xg.Mean([2, 3, 4], keepDim: true)) / (xg.Var([2, 3, 4], unbiased: false, keepDim: true) + 1e-5).Sqrt()).Reshape(2, 6, 4, 3);
        (composed * w).Sum().Backward();
        GradCheck.AssertClose(composed.ToArray(), y.ToArray(), 1e-5, 1e-5, "y");
        GradCheck.AssertClose(x.Grad!.ToArray(), gx, 1e-4, 1e-4, "dx");
    }

    [Fact]
    public void GroupNorm_and_LayerNorm_are_bit_identical_on_1_and_2_threads()
    {
        var rng = new Rng(107);
        var x = GradCheck.Randn(rng, 4, 32, 16, 16);
        var gamma = GradCheck.Randn(rng, 32); var beta = GradCheck.Randn(rng, 32);
        var upstream = GradCheck.Randn(rng, 4, 32, 16, 16);
        var lnGamma = GradCheck.Randn(rng, 16, 16); var lnBeta = GradCheck.Randn(rng, 16, 16);

        List<float[]> Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            try
            {
                Parallelism.MaxThreads = threads;
                var r = new List<float[]>();
                foreach (int which in new[] { 0, 1, 2 })
                {
                    Tensor[] ins = [x.Clone().RequireGrad(), (which == 2 ? lnGamma : gamma).Clone().RequireGrad(), (which == 2 ? lnBeta : beta).Clone().RequireGrad()];
                    var y = which switch
                    {
                        0 => Tensor.GroupNorm(ins[0], 8, ins[1], ins[2]),
                        1 => Tensor.GroupNormSilu(ins[0], 8, ins[1], ins[2]),
                        _ => Tensor.LayerNorm(ins[0], [16, 16], ins[1], ins[2]),
                    };
                    r.Add(y.ToArray());
                    (y * upstream).Sum().Backward();
                    foreach (var t in ins) r.Add(t.Grad!.ToArray());
                }
                return r;
            }
            finally { Parallelism.MaxThreads = saved; }
        }

        var one = Run(1); var two = Run(2);
        for (int i = 0; i < one.Count; i++) Assert.Equal(one[i], two[i]);
    }

    [Fact]
    public void GroupNorm_errors_name_the_shapes()
    {
        var x = Tensor.Zeros(2, 30, 5, 5);
        var ex = Assert.Throws<ArgumentException>(() => Tensor.GroupNorm(x, 32));
        Assert.Equal("GroupNorm: 30 channels are not divisible into 32 groups (input (2, 30, 5, 5))", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.GroupNormSilu(x, 3, Tensor.Zeros(32)));
        Assert.Contains("weight must be (30), got (32)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.GroupNorm(Tensor.Zeros(5), 1));
        Assert.Contains("(B, C, *spatial), got (5)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.LayerNorm(x, [4, 5]));
        Assert.Contains("(2, 30, 5, 5) does not end in the normalized shape (4, 5)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.LayerNorm(x, [5], bias: Tensor.Zeros(4)));
        Assert.Contains("bias must be (5), got (4)", ex.Message);
    }

    public static TheoryData<int[], int[]> LayerNormCases => new()
    {
        { [3, 17], [17] }, { [2, 3, 5], [3, 5] }, { [1, 33], [33] }, { [2, 40, 7], [7] }, { [5, 4], [4] },
    };

    [Theory, MemberData(nameof(LayerNormCases))]
    public void LayerNorm_backward_matches_finite_differences(int[] shape, int[] normalized)
    {
        var rng = new Rng(108);
        GradCheck.Check(t => Tensor.LayerNorm(t[0], normalized, t[1], t[2]),
            [GradCheck.Randn(rng, shape), GradCheck.Uniform(rng, 0.5f, 1.5f, normalized), GradCheck.Randn(rng, normalized)], rng);
        GradCheck.Check(t => Tensor.LayerNorm(t[0], normalized), [GradCheck.Randn(rng, shape)], rng);
    }

    [Theory]
    [InlineData(3, 17, 0f)]
    [InlineData(70, 64, 0f)]
    [InlineData(5, 257, 50f)]
    public void LayerNorm_forward_matches_double_reference(int rows, int d, float offset)
    {
        var rng = new Rng(109);
        var x = Tensor.RandN([rows, d], rng, mean: offset);
        var gamma = Tensor.RandN([d], rng); var beta = Tensor.RandN([d], rng);
        var expected = new float[x.Count];
        Norm.LayerNormReference(x.Data, gamma.Data, beta.Data, expected, rows, d, 1e-5);
        GradCheck.AssertClose(expected, Tensor.LayerNorm(x, [d], gamma, beta).ToArray(), 1e-6, 1e-6, "ln");
    }
}

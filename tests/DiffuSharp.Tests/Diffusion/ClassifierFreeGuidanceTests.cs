// Classifier-free guidance: the one batched 2B forward mixed equals two separate forwards mixed in double, W = 1 is
// the plain conditional model and W = 0 the unconditional one, a learned-variance output mixes only its ε half.
using DiffuSharp.Diffusion;
using DiffuSharp.NN;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

public sealed class ClassifierFreeGuidanceTests
{
    /// <summary>A tiny class-conditional UNet (4 classes + the null label) with every weight perturbed, so the output
    /// depends on the label and the input.</summary>
    static UNetModel Model(bool learnSigma = false)
    {
        var cfg = new UNetConfig(InChannels: 1, ModelChannels: 32, OutChannels: learnSigma ? 2 : 1, NumResBlocks: 1, AttentionResolutions: [],
            ChannelMult: [1, 2], NumClasses: 4, NumHeads: 1, UseScaleShiftNorm: true, NullClass: true);
        var model = new UNetModel(cfg, new Rng(3));
        var rng = new Rng(4);
        foreach (var (_, p) in model.NamedParameters())
        {
            var noise = new float[p.Count];
            rng.FillNormal(noise, 0f, 0.05f);
            var d = p.Data;
            for (int i = 0; i < d.Length; i++) d[i] += noise[i];
        }
        model.Eval();
        return model;
    }

    static (Tensor X, Tensor T) Inputs()
    {
        var rng = new Rng(5);
        return (Tensor.RandN([3, 1, 8, 8], rng), Tensor.FromArray([10f, 500f, 990f], 3));
    }

    static void AssertClose(double[] expected, float[] actual, double tol)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs), worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= tol * scale, $"max |Δ| {worst:E2} > {tol:E0} × {scale:E2}");
    }

    [Theory, InlineData(3.0), InlineData(7.5), InlineData(0.5)]
    public void Batched_guided_output_equals_two_forwards_mixed(double w)
    {
        var model = Model();
        var (x, t) = Inputs();
        int[] classes = [0, 3, 1];
        var guided = ClassifierFreeGuidance.Create((xx, tt, c) => model.Forward(xx, tt, c), classes, nullLabel: 4, w);
        float[] actual;
        using (Tensor.NoGrad()) actual = guided(x, t).ToArray();
        float[] c, u;
        using (Tensor.NoGrad())
        {
            c = model.Forward(x, t, classes).ToArray();
            u = model.Forward(x, t, [4, 4, 4]).ToArray();
        }
        var expected = new double[c.Length];
        for (int i = 0; i < c.Length; i++) expected[i] = u[i] + w * ((double)c[i] - u[i]);
        AssertClose(expected, actual, 1e-5);
        // and the guidance really moves the output away from the conditional one
        Assert.True(c.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
    }

    [Fact]
    public void Learned_sigma_mixes_the_eps_half_and_keeps_the_conditional_variance()
    {
        var model = Model(learnSigma: true);
        var (x, t) = Inputs();
        int[] classes = [2, 2, 0];
        const double w = 4;
        float[] actual, c, u;
        using (Tensor.NoGrad())
        {
            actual = ClassifierFreeGuidance.Create((xx, tt, cc) => model.Forward(xx, tt, cc), classes, 4, w)(x, t).ToArray();
            c = model.Forward(x, t, classes).ToArray();
            u = model.Forward(x, t, [4, 4, 4]).ToArray();
        }
        int per = 64;                                                 // (B, 2, 8, 8): channel 0 = ε, channel 1 = variance
        var expected = new double[c.Length];
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < per; i++)
            {
                int e = b * 2 * per + i, v = e + per;
                expected[e] = u[e] + w * ((double)c[e] - u[e]);
                expected[v] = c[v];
            }
        AssertClose(expected, actual, 1e-5);
    }

    [Fact]
    public void Scale_one_is_the_conditional_model_and_zero_the_unconditional_one()
    {
        var model = Model();
        var (x, t) = Inputs();
        int[] classes = [1, 0, 3];
        using var _ = Tensor.NoGrad();
        Assert.Equal(model.Forward(x, t, classes).ToArray(), ClassifierFreeGuidance.Create((a, b, c) => model.Forward(a, b, c), classes, 4, 1.0)(x, t).ToArray());
        Assert.Equal(model.Forward(x, t, [4, 4, 4]).ToArray(), ClassifierFreeGuidance.Create((a, b, c) => model.Forward(a, b, c), classes, 4, 0.0)(x, t).ToArray());
    }

    [Fact]
    public void One_forward_of_twice_the_batch_per_call()
    {
        var calls = new List<int>();
        ClassConditionalModel fake = (x, t, c) => { calls.Add(x.Dim(0)); return x * 1.0; };
        var (x, t) = Inputs();
        ClassifierFreeGuidance.Create(fake, [0, 1, 2], 4, 3.0)(x, t);
        ClassifierFreeGuidance.Create(fake, [0, 1, 2], 4, 1.0)(x, t);
        Assert.Equal([6, 3], calls);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        ClassConditionalModel fake = (x, t, c) => x;
        Assert.Throws<ArgumentException>(() => ClassifierFreeGuidance.Create(fake, [0, 4], 4, 3.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClassifierFreeGuidance.Create(fake, [0], 4, double.NaN));
        var (x, t) = Inputs();
        Assert.Throws<ArgumentException>(() => ClassifierFreeGuidance.Create(fake, [0, 1], 4, 3.0)(x, t));   // 2 labels, batch 3
    }
}

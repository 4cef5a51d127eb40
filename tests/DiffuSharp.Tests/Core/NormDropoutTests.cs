// Dropout (part of the norm family's tests): identity when not training or p = 0, mask statistics and scale, same seed same mask whatever the
// thread count, and a backward that multiplies by the mask.
using DiffuSharp;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

[Collection("Parallelism")]
public class NormDropoutTests
{
    [Fact]
    public void Not_training_or_p_zero_is_the_identity_and_draws_nothing()
    {
        var rng = new Rng(1);
        var x = GradCheck.Randn(rng, 3, 17);
        var before = rng.GetState();
        Assert.Same(x, x.Dropout(0.5f, rng, training: false));
        Assert.Same(x, x.Dropout(0f, rng));
        Assert.Equal(before, rng.GetState());
    }

    [Fact]
    public void Mask_keeps_one_minus_p_and_scales_kept_values()
    {
        const float p = 0.3f;
        var x = Tensor.Ones(200_001);
        var y = x.Dropout(p, new Rng(2)).ToArray();
        int zeros = 0;
        foreach (float v in y)
        {
            if (v == 0f) zeros++;
            else Assert.Equal(1f / (1f - p), v, 6);
        }
        // Binomial(n, 0.3): σ of the fraction ≈ √(0.21/n) ≈ 0.001, so ±0.005 is 5σ.
        Assert.InRange(zeros / (double)y.Length, p - 0.005, p + 0.005);
        Assert.All(Tensor.Ones(100).Dropout(1f, new Rng(3)).ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Same_seed_gives_same_mask_on_1_and_2_threads_and_other_seeds_differ()
    {
        var x = Tensor.RandN([300_000], new Rng(4));
        float[] Run(int threads, ulong seed)
        {
            int saved = Parallelism.MaxThreads;
            try { Parallelism.MaxThreads = threads; return x.Dropout(0.1f, new Rng(seed)).ToArray(); }
            finally { Parallelism.MaxThreads = saved; }
        }
        Assert.Equal(Run(1, 5), Run(2, 5));
        Assert.NotEqual(Run(2, 5), Run(2, 6));
    }

    [Fact]
    public void Backward_multiplies_by_the_mask()
    {
        var rng = new Rng(7);
        var x = GradCheck.Randn(rng, 5, 33).RequireGrad();
        var w = GradCheck.Randn(rng, 5, 33);
        var y = x.Dropout(0.4f, new Rng(8));
        (y * w).Sum().Backward();
        var mask = new float[x.Count];
        DropoutMask.Fill(new Rng(8).NextUInt64(), 0.4f, mask);      // the op draws one key per call
        var xv = x.ToArray(); var yv = y.ToArray(); var wv = w.ToArray(); var g = x.Grad!.ToArray();
        for (int i = 0; i < mask.Length; i++)
        {
            Assert.Equal(xv[i] * mask[i], yv[i]);
            Assert.Equal(wv[i] * mask[i], g[i]);
        }
        (x.Dropout(0.4f, new Rng(8)) * w).Sum().Backward();              // a second backward adds the same mask
        var twice = x.Grad!.ToArray();
        for (int i = 0; i < mask.Length; i++) Assert.Equal(2 * wv[i] * mask[i], twice[i], 5);
    }

    [Fact]
    public void Invalid_p_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(2, 3).Dropout(1.5f, new Rng(1)));
        Assert.Contains("p must be in [0, 1], got 1.5 (input (2, 3))", ex.Message);
        Assert.Throws<ArgumentException>(() => Tensor.Zeros(2).Dropout(float.NaN, new Rng(1)));
    }
}

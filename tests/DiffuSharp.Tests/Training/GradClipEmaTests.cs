// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_) and the parameter EMA (improved-diffusion's
// update_ema): values against plain double arithmetic, thread-count independence, state round trips.
using DiffuSharp;
using DiffuSharp.Kernels;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

[Collection("Parallelism")]
public class GradClipEmaTests
{
    static Tensor Param(float[] grad, params int[] shape)
    {
        var p = Tensor.Zeros(shape);
        p.Grad = Tensor.FromArray(grad, shape);
        return p;
    }

    [Fact]
    public void ClipGlobalNorm_returns_the_norm_and_scales_only_above_max()
    {
        var a = Param([3f, 0f], 2); var b = Param([0f, 4f, 0f, 0f], 2, 2); var none = Tensor.Zeros(3);
        double norm = GradClip.ClipGlobalNorm([a, b, none], maxNorm: 10);
        Assert.Equal(5.0, norm, 12);
        Assert.Equal(new[] { 3f, 0f }, a.Grad!.ToArray());           // coef = 10 / 5 ≥ 1: untouched

        norm = GradClip.ClipGlobalNorm([a, b, none], maxNorm: 1);
        Assert.Equal(5.0, norm, 12);
        float coef = (float)(1 / (5 + 1e-6));
        Assert.Equal(new[] { 3f * coef, 0f }, a.Grad!.ToArray());
        Assert.Equal(new[] { 0f, 4f * coef, 0f, 0f }, b.Grad!.ToArray());
        Assert.Null(none.Grad);
        Assert.Equal(1.0, GradClip.ClipGlobalNorm([a, b], 1), 5);
    }

    [Fact]
    public void ClipGlobalNorm_is_double_accurate_and_independent_of_thread_count()
    {
        var rng = new Rng(11);
        var big = Tensor.RandN([1_000_003], rng);
        double expected = 0;
        foreach (float v in big.Data) expected += (double)v * v;
        expected = Math.Sqrt(expected);
        double Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            try { Parallelism.MaxThreads = threads; var p = Tensor.Zeros(1_000_003); p.Grad = big.Clone(); return GradClip.ClipGlobalNorm([p], 1e9); }
            finally { Parallelism.MaxThreads = saved; }
        }
        double one = Run(1), two = Run(2);
        Assert.Equal(one, two);
        Assert.True(Math.Abs(one - expected) <= 1e-12 * expected, $"{one} vs {expected}");
    }

    [Fact]
    public void Ema_update_matches_rate_formula_and_starts_from_a_copy()
    {
        var rng = new Rng(12);
        var p = Tensor.RandN([37], rng); var q = Tensor.RandN([2, 3], rng);
        var ema = new Ema([p, q], 0.9);
        Assert.Equal(p.ToArray(), ema.Shadow[0].ToArray());
        var start = p.ToArray();
        var target = p.ToArray();
        for (int step = 0; step < 5; step++)
        {
            var src = Tensor.RandN([37], rng);
            src.Data.CopyTo(p.Data);
            ema.Update();
            for (int i = 0; i < target.Length; i++) target[i] = MathF.FusedMultiplyAdd(src.Data[i], (float)(1 - 0.9), target[i] * 0.9f);
        }
        Assert.Equal(target, ema.Shadow[0].ToArray());
        Assert.NotEqual(start, ema.Shadow[0].ToArray());
        Assert.Equal(q.ToArray(), ema.Shadow[1].ToArray());           // q never changed: average stays q
    }

    [Fact]
    public void Ema_rate_zero_copies_and_rate_one_freezes()
    {
        var p = Tensor.Ones(5);
        var follow = new Ema([p], 0); var frozen = new Ema([p], 1);
        Tensor.Full([5], 3f).Data.CopyTo(p.Data);
        follow.Update(); frozen.Update();
        Assert.All(follow.Shadow[0].ToArray(), v => Assert.Equal(3f, v));
        Assert.All(frozen.Shadow[0].ToArray(), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void Ema_state_round_trips_and_copies_into_a_model()
    {
        var rng = new Rng(13);
        var p = Tensor.RandN([40_000], rng);
        var ema = new Ema([p], 0.999);
        Tensor.RandN([40_000], rng).Data.CopyTo(p.Data);
        ema.Update();
        var state = ema.ExportState();
        var other = new Ema([Tensor.Zeros(40_000)], 0.999);
        other.ImportState(state);
        Assert.Equal(ema.Shadow[0].ToArray(), other.Shadow[0].ToArray());
        var model = Tensor.Zeros(40_000);
        other.CopyTo([model]);
        Assert.Equal(ema.Shadow[0].ToArray(), model.ToArray());
        Assert.Throws<ArgumentException>(() => new Ema([p], 0.99).ImportState(state));
        Assert.Throws<ArgumentException>(() => new Ema([p], 1.5));
    }

    [Fact]
    public void Ema_kernel_matches_PyTorch_mul_then_add_with_alpha()
    {
        // torch: targ.mul_(rate).add_(src, alpha=1 − rate) is fma(src, 1 − rate, targ·rate) in float32 (ATen fuses the add).
        var rng = new Rng(14);
        var t = new float[100]; var s = new float[100];
        rng.FillNormal(t); rng.FillNormal(s);
        var expected = new float[100];
        for (int i = 0; i < 100; i++) expected[i] = (float)((double)s[i] * (float)(1 - 0.9999) + (double)(t[i] * 0.9999f));
        Optim.EmaUpdate(t, s, 0.9999f, (float)(1 - 0.9999));
        Assert.Equal(expected, t);
    }
}

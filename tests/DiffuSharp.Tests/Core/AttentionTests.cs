// Fused scaled-dot-product attention: parity with the composed softmax(scale·q·kᵀ)·v forward and backward,
// finite differences on odd shapes and on transposed views, the row-softmax kernel against its double reference,
// large logits, thread-count determinism and the shape errors.
using DiffuSharp;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

[Collection("Parallelism")]
public class AttentionTests
{
    static Tensor Composed(Tensor q, Tensor k, Tensor v, float scale) => (q.MatMul(k.Transpose(-1, -2)) * scale).Softmax().MatMul(v);

    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        // batch, Lq, Lk, D, Dv
        { 1, 1, 1, 1, 1 }, { 3, 17, 5, 3, 4 }, { 2, 3, 33, 17, 1 }, { 1, 33, 17, 8, 5 }, { 2, 16, 16, 8, 8 },
    };

    [Theory, MemberData(nameof(Shapes))]
    public void Attention_matches_composed_form_forward_and_backward(int b, int lq, int lk, int d, int dv)
    {
        var rng = new Rng(200);
        var q = GradCheck.Randn(rng, b, lq, d).RequireGrad();
        var k = GradCheck.Randn(rng, b, lk, d).RequireGrad();
        var v = GradCheck.Randn(rng, b, lk, dv).RequireGrad();
        var w = GradCheck.Randn(rng, b, lq, dv);
        float scale = 1f / MathF.Sqrt(d);

        var fused = Tensor.Attention(q, k, v, scale);
        var yf = fused.ToArray();
        (fused * w).Sum().Backward();
        float[] gq = q.Grad!.ToArray(), gk = k.Grad!.ToArray(), gv = v.Grad!.ToArray();
        q.Grad = k.Grad = v.Grad = null;

        var composed = Composed(q, k, v, scale);
        (composed * w).Sum().Backward();
        GradCheck.AssertClose(composed.ToArray(), yf, 1e-5, 1e-6, "O");
        GradCheck.AssertClose(q.Grad!.ToArray(), gq, 1e-4, 1e-5, "dQ");
        GradCheck.AssertClose(k.Grad!.ToArray(), gk, 1e-4, 1e-5, "dK");
        GradCheck.AssertClose(v.Grad!.ToArray(), gv, 1e-4, 1e-5, "dV");
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Attention_backward_matches_finite_differences(int b, int lq, int lk, int d, int dv)
    {
        var rng = new Rng(201);
        GradCheck.Check(t => Tensor.Attention(t[0], t[1], t[2], 0.7f),
            [GradCheck.Randn(rng, b, lq, d), GradCheck.Randn(rng, b, lk, d), GradCheck.Randn(rng, b, lk, dv)], rng);
    }

    [Fact]
    public void Attention_with_transposed_views_and_extra_batch_dims_matches_finite_differences()
    {
        // improved-diffusion keeps q, k, v as (B·heads, C, T): pass them as transposed views, copied by nobody.
        var rng = new Rng(202);
        GradCheck.Check(t => Tensor.Attention(t[0].Transpose(-1, -2), t[1].Transpose(-1, -2), t[2].Transpose(-1, -2), 0.5f),
            [GradCheck.Randn(rng, 2, 5, 7), GradCheck.Randn(rng, 2, 5, 9), GradCheck.Randn(rng, 2, 3, 9)], rng);
        GradCheck.Check(t => Tensor.Attention(t[0], t[1], t[2], -0.3f),     // (B, heads, L, D), negative scale
            [GradCheck.Randn(rng, 2, 3, 5, 4), GradCheck.Randn(rng, 2, 3, 6, 4), GradCheck.Randn(rng, 2, 3, 6, 2)], rng);
    }

    [Fact]
    public void Transposed_views_give_the_same_values_as_contiguous_copies()
    {
        var rng = new Rng(203);
        var qt = GradCheck.Randn(rng, 3, 8, 11); var kt = GradCheck.Randn(rng, 3, 8, 13); var vt = GradCheck.Randn(rng, 3, 4, 13);
        var a = Tensor.Attention(qt.Transpose(-1, -2), kt.Transpose(-1, -2), vt.Transpose(-1, -2), 0.35f).ToArray();
        var b = Tensor.Attention(qt.Transpose(-1, -2).Contiguous(), kt.Transpose(-1, -2).Contiguous(), vt.Transpose(-1, -2).Contiguous(), 0.35f).ToArray();
        GradCheck.AssertClose(b, a, 1e-6, 1e-6, "O");
    }

    [Fact]
    public void Large_logits_do_not_overflow()
    {
        var rng = new Rng(204);
        var q = Tensor.RandN([2, 9, 4], rng, std: 30f); var k = Tensor.RandN([2, 9, 4], rng, std: 30f); var v = Tensor.RandN([2, 9, 3], rng);
        var y = Tensor.Attention(q, k, v, 1f).ToArray();
        Assert.All(y, z => Assert.True(float.IsFinite(z)));
        GradCheck.AssertClose(Composed(q, k, v, 1f).ToArray(), y, 1e-4, 1e-4, "O");
    }

    public static IEnumerable<object[]> RowLengths()
    {
        for (int n = 1; n <= 40; n++) yield return [n];
        foreach (int n in new[] { 63, 64, 65, 196, 257 }) yield return [n];
    }

    [Theory, MemberData(nameof(RowLengths))]
    public unsafe void Scaled_softmax_kernel_matches_double_reference(int n)
    {
        var rng = new Rng((ulong)(300 + n));
        const int rows = 3;
        var s = new float[rows * n + 1];                       // offset by one: misaligned rows
        rng.FillNormal(s, 0f, 3f);
        foreach (float scale in new[] { 0.125f, -1.5f })
        {
            var expected = new float[rows * n];
            AttentionSoftmax.Reference(s.AsSpan(1), expected, rows, n, scale);
            var got = (float[])s.Clone();
            fixed (float* p = got) AttentionSoftmax.Forward(p + 1, rows, n, scale);
            GradCheck.AssertClose(expected, got.AsSpan(1), 1e-5, 1e-7, $"softmax n={n}");
        }
    }

    [Fact]
    public void Attention_is_bit_identical_on_1_and_2_threads()
    {
        var rng = new Rng(205);
        var q = GradCheck.Randn(rng, 4, 64, 16); var k = GradCheck.Randn(rng, 4, 64, 16); var v = GradCheck.Randn(rng, 4, 64, 16);
        var w = GradCheck.Randn(rng, 4, 64, 16);
        List<float[]> Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            try
            {
                Parallelism.MaxThreads = threads;
                Tensor[] ins = [q.Clone().RequireGrad(), k.Clone().RequireGrad(), v.Clone().RequireGrad()];
                var y = Tensor.Attention(ins[0], ins[1], ins[2], 0.25f);
                (y * w).Sum().Backward();
                return [y.ToArray(), .. ins.Select(t => t.Grad!.ToArray())];
            }
            finally { Parallelism.MaxThreads = saved; }
        }
        var one = Run(1); var two = Run(2);
        for (int i = 0; i < one.Count; i++) Assert.Equal(one[i], two[i]);
    }

    [Fact]
    public void Attention_errors_name_the_shapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Attention(Tensor.Zeros(2, 5, 8), Tensor.Zeros(2, 7, 4), Tensor.Zeros(2, 7, 3), 1f));
        Assert.Contains("head size (8 vs 4): q (2, 5, 8), k (2, 7, 4), v (2, 7, 3)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.Attention(Tensor.Zeros(2, 5, 8), Tensor.Zeros(2, 7, 8), Tensor.Zeros(2, 6, 3), 1f));
        Assert.Contains("length (7 vs 6)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.Attention(Tensor.Zeros(2, 5, 8), Tensor.Zeros(3, 7, 8), Tensor.Zeros(3, 7, 3), 1f));
        Assert.Contains("batch dimensions differ", ex.Message);
    }
    /// <summary>improved-diffusion's QKVAttention written out: split per head, transpose, attend, transpose back.</summary>
    static Tensor ComposedQkv(Tensor qkv, int heads)
    {
        int b = qkv.Dim(0), t = qkv.Dim(2), ch = qkv.Dim(1) / (3 * heads);
        var perHead = qkv.Reshape(b * heads, 3 * ch, t);                                 // (B·heads, 3·ch, T)
        var q = perHead.Slice(1, 0, ch).Transpose(1, 2).Contiguous();                    // (B·heads, T, ch)
        var k = perHead.Slice(1, ch, ch).Transpose(1, 2).Contiguous();
        var v = perHead.Slice(1, 2 * ch, ch).Transpose(1, 2).Contiguous();
        return Composed(q, k, v, 1f / MathF.Sqrt(ch)).Transpose(1, 2).Reshape(b, heads * ch, t);
    }

    public static TheoryData<int, int, int, int> QkvShapes => new()
    {
        // batch, heads, ch, T
        { 1, 1, 1, 1 }, { 2, 1, 3, 5 }, { 3, 2, 4, 7 }, { 2, 3, 5, 17 }, { 1, 1, 16, 33 },
    };

    [Theory, MemberData(nameof(QkvShapes))]
    public void Qkv_attention_matches_composed_form_forward_and_backward(int b, int heads, int ch, int t)
    {
        var rng = new Rng(206);
        var qkv = GradCheck.Randn(rng, b, 3 * heads * ch, t).RequireGrad();
        var w = GradCheck.Randn(rng, b, heads * ch, t);
        var fused = Tensor.QkvAttention(qkv, heads);
        Assert.Equal([b, heads * ch, t], fused.Shape);
        var yf = fused.ToArray();
        (fused * w).Sum().Backward();
        var g = qkv.Grad!.ToArray();
        (Tensor.QkvAttention(qkv, heads) * w).Sum().Backward();         // a second backward adds to the gradient
        var twice = qkv.Grad!.ToArray();
        for (int i = 0; i < g.Length; i++) Assert.Equal(2 * g[i], twice[i], 5);
        qkv.Grad = null;

        var composed = ComposedQkv(qkv, heads);
        (composed * w).Sum().Backward();
        GradCheck.AssertClose(composed.ToArray(), yf, 1e-5, 1e-6, "O");
        GradCheck.AssertClose(qkv.Grad!.ToArray(), g, 1e-4, 1e-5, "dqkv");
    }

    [Theory, MemberData(nameof(QkvShapes))]
    public void Qkv_attention_backward_matches_finite_differences(int b, int heads, int ch, int t)
    {
        var rng = new Rng(207);
        GradCheck.Check(x => Tensor.QkvAttention(x[0], heads), [GradCheck.Randn(rng, b, 3 * heads * ch, t)], rng);
    }

    [Fact]
    public void Qkv_attention_is_bit_identical_on_1_and_2_threads_and_checks_its_shape()
    {
        var rng = new Rng(208);
        var qkv = GradCheck.Randn(rng, 4, 3 * 2 * 8, 49);
        var w = GradCheck.Randn(rng, 4, 2 * 8, 49);
        float[][] Run(int threads)
        {
            int saved = Parallelism.MaxThreads;
            try
            {
                Parallelism.MaxThreads = threads;
                var x = qkv.Clone().RequireGrad();
                var y = Tensor.QkvAttention(x, 2);
                (y * w).Sum().Backward();
                return [y.ToArray(), x.Grad!.ToArray()];
            }
            finally { Parallelism.MaxThreads = saved; }
        }
        var one = Run(1); var two = Run(2);
        Assert.Equal(one[0], two[0]);
        Assert.Equal(one[1], two[1]);
        var ex = Assert.Throws<ArgumentException>(() => Tensor.QkvAttention(Tensor.Zeros(2, 10, 5), 2));
        Assert.Contains("(B, 3·2·ch, T), got (2, 10, 5)", ex.Message);
    }
}

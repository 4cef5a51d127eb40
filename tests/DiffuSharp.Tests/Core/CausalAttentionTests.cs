// Causal option of the fused attention (CLIP's text encoder): forward against the scalar double reference, forward
// and backward against the composed form with an additive −1e30 mask (what transformers adds before its softmax),
// and finite differences.
using DiffuSharp;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

[Collection("Parallelism")]
public class CausalAttentionTests
{
    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        // batch, Lq, Lk, D, Dv
        { 1, 1, 1, 1, 1 }, { 2, 7, 7, 4, 4 }, { 3, 17, 17, 8, 5 }, { 2, 5, 9, 3, 2 }, { 1, 9, 4, 3, 3 }, { 2, 77, 77, 8, 8 },
    };

    static Tensor Composed(Tensor q, Tensor k, Tensor v, float scale)
    {
        int lq = q.Dim(-2), lk = k.Dim(-2);
        var mask = new float[lq * lk];
        for (int i = 0; i < lq; i++)
            for (int j = i + 1; j < lk; j++) mask[i * lk + j] = -1e30f;   // e^(−1e30 − max) is exactly 0
        return ((q.MatMul(k.Transpose(-1, -2)) * scale) + Tensor.FromArray(mask, [lq, lk])).Softmax().MatMul(v);
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Causal_attention_matches_the_scalar_reference(int b, int lq, int lk, int d, int dv)
    {
        var rng = new Rng(300);
        var q = GradCheck.Randn(rng, b, lq, d); var k = GradCheck.Randn(rng, b, lk, d); var v = GradCheck.Randn(rng, b, lk, dv);
        float scale = 1f / MathF.Sqrt(d);
        var y = Tensor.Attention(q, k, v, scale, causal: true).ToArray();
        var expected = new float[b * lq * dv];
        float[] qa = q.ToArray(), ka = k.ToArray(), va = v.ToArray();
        for (int i = 0; i < b; i++)
            AttentionFused.CausalReference(qa.AsSpan(i * lq * d, lq * d), ka.AsSpan(i * lk * d, lk * d), va.AsSpan(i * lk * dv, lk * dv),
                expected.AsSpan(i * lq * dv, lq * dv), lq, lk, d, dv, scale);
        GradCheck.AssertClose(expected, y, 1e-5, 1e-6, "O");
    }

    [Theory, MemberData(nameof(Shapes))]
    public void Causal_attention_matches_the_masked_composed_form_forward_and_backward(int b, int lq, int lk, int d, int dv)
    {
        var rng = new Rng(301);
        var q = GradCheck.Randn(rng, b, lq, d).RequireGrad();
        var k = GradCheck.Randn(rng, b, lk, d).RequireGrad();
        var v = GradCheck.Randn(rng, b, lk, dv).RequireGrad();
        var w = GradCheck.Randn(rng, b, lq, dv);
        float scale = 0.6f;

        var fused = Tensor.Attention(q, k, v, scale, causal: true);
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

    [Theory, InlineData(2, 6, 6, 3, 2), InlineData(1, 5, 8, 4, 3), InlineData(2, 8, 3, 2, 2)]
    public void Causal_attention_backward_matches_finite_differences(int b, int lq, int lk, int d, int dv)
    {
        var rng = new Rng(302);
        GradCheck.Check(t => Tensor.Attention(t[0], t[1], t[2], 0.7f, causal: true),
            [GradCheck.Randn(rng, b, lq, d), GradCheck.Randn(rng, b, lk, d), GradCheck.Randn(rng, b, lk, dv)], rng);
    }

    [Fact]
    public void A_later_key_does_not_change_an_earlier_query()
    {
        var rng = new Rng(303);
        var q = GradCheck.Randn(rng, 1, 6, 4); var k = GradCheck.Randn(rng, 1, 6, 4); var v = GradCheck.Randn(rng, 1, 6, 3);
        var y0 = Tensor.Attention(q, k, v, 0.5f, causal: true).ToArray();
        k.Data[5 * 4] += 3f; v.Data[5 * 3] -= 2f;                     // change key/value 5 only
        var y1 = Tensor.Attention(q, k, v, 0.5f, causal: true).ToArray();
        Assert.Equal(y0.AsSpan(0, 5 * 3).ToArray(), y1.AsSpan(0, 5 * 3).ToArray());
        Assert.NotEqual(y0[5 * 3], y1[5 * 3]);
    }
}

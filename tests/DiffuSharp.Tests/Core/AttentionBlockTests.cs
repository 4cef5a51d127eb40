// The attention forward cut into blocks of query rows (AttentionFused.BlockFloats) against the same op run whole,
// bit for bit, and against a double-precision reference: heads whose width is not a whole number of 32 columns (the
// transposed O block), causal masks, the saved probabilities of a training forward, and improved-diffusion's
// transposed qkv layout.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

[Collection("Parallelism")]
public class AttentionBlockTests
{
    static float[] Run(Func<Tensor> f, int blockFloats)
    {
        using (KernelSwitches.With(s => s with { AttentionBlockFloats = blockFloats }))
            return f().ToArray();
    }

    [Theory]
    [InlineData(70, 45, 12, 40, false)]
    [InlineData(70, 45, 12, 40, true)]
    [InlineData(100, 100, 8, 32, true)]
    [InlineData(65, 30, 16, 7, false)]
    public void Blocks_of_query_rows_give_the_bits_of_the_whole_item(int lq, int lk, int d, int dv, bool causal)
    {
        var rng = new Rng(21);
        var q = Tensor.RandN([3, lq, d], rng); var k = Tensor.RandN([3, lk, d], rng); var v = Tensor.RandN([3, lk, dv], rng);
        float scale = 1f / MathF.Sqrt(d);
        foreach (bool grad in new[] { false, true })
        {
            Tensor Call()
            {
                if (!grad) using (Tensor.NoGrad()) return Tensor.Attention(q, k, v, scale, causal);
                var qg = Tensor.FromArray(q.ToArray(), 3, lq, d).RequireGrad();
                return Tensor.Attention(qg, k, v, scale, causal);
            }
            Assert.Equal(32, RowsAt(1, lq, lk));
            var whole = Run(Call, 1 << 30);
            var blocked = Run(Call, 1);
            Assert.True(whole.AsSpan().SequenceEqual(blocked), $"blocked forward differs from the whole one (grad {grad})");
            var expect = Reference(q.ToArray(), k.ToArray(), v.ToArray(), 3, lq, lk, d, dv, scale, causal);
            for (int i = 0; i < expect.Length; i++)
                Assert.True(Math.Abs(expect[i] - blocked[i]) <= 1e-5 * (1 + Math.Abs(expect[i])), $"[{i}]: reference {expect[i]}, kernel {blocked[i]}");
        }
    }

    [Theory]
    [InlineData(77, 77, 64, 64, true)]      // CLIP's text encoder
    [InlineData(70, 45, 40, 40, false)]     // SD 1.5's heads of 40 (the transposed O block), cross-attention lengths
    [InlineData(33, 33, 8, 7, false)]
    public void Split_heads_are_read_and_written_in_place_with_the_bits_of_the_dense_path(int lq, int lk, int d, int dv, bool causal)
    {
        const int b = 2, h = 3;
        var rng = new Rng(23);
        // (B, L, H·D) projections split into heads as a transformer does: (B, L, H, D) → (B, H, L, D) views
        Tensor Heads(int l, int width) => Tensor.RandN([b, l, h * width], rng).Reshape(b, l, h, width).Permute(0, 2, 1, 3);
        var q = Heads(lq, d); var k = Heads(lk, d); var v = Heads(lk, dv);
        float scale = 1f / MathF.Sqrt(d);
        using (Tensor.NoGrad())
        {
            var dense = Tensor.Attention(q.Contiguous(), k.Contiguous(), v.Contiguous(), scale, causal);
            var split = Tensor.Attention(q, k, v, scale, causal);
            Assert.Equal([b, h, lq, dv], split.Shape);
            Assert.True(dense.ToArray().AsSpan().SequenceEqual(split.ToArray()), "split heads differ from the dense path");
            var merged = split.Permute(0, 2, 1, 3);                       // back to (B, Lq, H, Dv): already in that order
            Assert.True(merged.IsContiguous);
            Assert.True(dense.Permute(0, 2, 1, 3).Contiguous().ToArray().AsSpan().SequenceEqual(merged.Reshape(b, lq, h * dv).ToArray()));
            // a block of query rows of split heads (the UNet's chunked attention) reads in place too
            var rows = Tensor.Attention(q.Slice(2, 5, 9), k, v, scale);
            var rowsDense = Tensor.Attention(q.Contiguous().Slice(2, 5, 9).Contiguous(), k.Contiguous(), v.Contiguous(), scale);
            Assert.True(rowsDense.ToArray().AsSpan().SequenceEqual(rows.ToArray()), "a slice of split heads differs from the dense path");
        }
        // With gradients recorded the dense path runs (the backward writes dense gradients) and gives the same values.
        var qg = q.Contiguous().RequireGrad();
        var withGrad = Tensor.Attention(qg, k, v, scale, causal);
        using (Tensor.NoGrad())
            Assert.True(Tensor.Attention(q, k, v, scale, causal).ToArray().AsSpan().SequenceEqual(withGrad.ToArray()));
    }

    [Fact]
    public void Qkv_attention_in_blocks_gives_the_bits_of_the_whole_item()
    {
        var qkv = Tensor.RandN([2, 3 * 2 * 40, 70], new Rng(22));      // (B, 3·heads·ch, T), heads 2 of 40
        Tensor Call() { using (Tensor.NoGrad()) return Ops.QkvAttention(qkv, 2); }
        Assert.True(Run(Call, 1 << 30).AsSpan().SequenceEqual(Run(Call, 1)), "blocked qkv attention differs from the whole one");
    }

    static int RowsAt(int blockFloats, int lq, int lk)
    {
        using (KernelSwitches.With(s => s with { AttentionBlockFloats = blockFloats }))
            return AttentionFused.BlockRows(lq, lk);
    }

    static double[] Reference(float[] q, float[] k, float[] v, int b, int lq, int lk, int d, int dv, float scale, bool causal)
    {
        var o = new double[b * lq * dv];
        var w = new double[lk];
        for (int n = 0; n < b; n++)
            for (int i = 0; i < lq; i++)
            {
                int seen = causal ? Math.Min(i + 1, lk) : lk;
                double max = double.NegativeInfinity, sum = 0;
                for (int j = 0; j < seen; j++)
                {
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += (double)q[(n * lq + i) * d + c] * k[(n * lk + j) * d + c];
                    w[j] = scale * dot; max = Math.Max(max, w[j]);
                }
                for (int j = 0; j < seen; j++) sum += w[j] = Math.Exp(w[j] - max);
                for (int c = 0; c < dv; c++)
                {
                    double acc = 0;
                    for (int j = 0; j < seen; j++) acc += w[j] * v[(n * lk + j) * dv + c];
                    o[(n * lq + i) * dv + c] = acc / sum;
                }
            }
        return o;
    }
}

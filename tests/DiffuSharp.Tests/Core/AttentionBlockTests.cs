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

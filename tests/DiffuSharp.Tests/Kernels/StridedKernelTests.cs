// The strided copy kernels (Kernels/Strided.cs): the zero-stride scatter-add that sums an expand's gradient (a
// SIMD double-precision row sum) and the block copy behind concat, against scalar references at every length
// 0..257 and misaligned offsets.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

public class StridedKernelTests
{
    public static IEnumerable<object[]> Lengths => Enumerable.Range(0, 258).Select(n => new object[] { n });

    [Theory, MemberData(nameof(Lengths))]
    public void Zero_stride_scatter_add_sums_each_row(int n)
    {
        const int rows = 3;
        for (int offset = 0; offset <= 3; offset++)
        {
            var big = new float[rows * n + 4];
            new Rng((ulong)(n * 4 + offset)).FillUniform(big, -3f, 3f);
            var src = big.AsSpan(offset, rows * n);
            var dst = new float[rows + 8];
            new Rng((ulong)n).FillUniform(dst, -1f, 1f);
            var expected = (float[])dst.Clone();
            for (int r = 0; r < rows; r++)
            {
                double s = 0;
                for (int i = 0; i < n; i++) s += src[r * n + i];
                expected[3 - offset + r] += (float)s;
            }
            Strided.ScatterAdd(src, dst, 3 - offset, [rows, n], [1, 0]);      // (rows, n) → dst[r] += Σ row r
            GradCheck.AssertClose(expected, dst, 1e-6, 1e-6, $"n={n} offset={offset}");
        }
    }
    [Theory, MemberData(nameof(Lengths))]
    public unsafe void Block_copy_writes_or_adds_each_block(int n)
    {
        const int outer = 5;
        foreach (bool accumulate in new[] { false, true })
            for (int offset = 0; offset <= 3; offset++)
            {
                long srcStride = n + 2, dstStride = 2 * n + 3;
                var src = new float[outer * srcStride + 4];
                new Rng((ulong)(n * 8 + offset)).FillUniform(src, -2f, 2f);
                var dst = new float[outer * dstStride + 4];
                new Rng((ulong)(n * 8 + offset + 4)).FillUniform(dst, -1f, 1f);
                var expected = (float[])dst.Clone();
                for (int o = 0; o < outer; o++)
                    for (int i = 0; i < n; i++)
                    {
                        float v = src[offset + o * srcStride + i];
                        ref float e = ref expected[3 - offset + o * dstStride + i];
                        e = accumulate ? e + v : v;
                    }
                fixed (float* ps = src, pd = dst)
                    Strided.CopyBlocks(ps + offset, srcStride, pd + 3 - offset, dstStride, outer, n, accumulate);
                Assert.Equal(expected, dst);
            }
    }
}

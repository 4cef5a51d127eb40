// The strided copy kernels (Kernels/Strided.cs): the zero-stride scatter-add that sums an expand's gradient (a
// SIMD double-precision row sum) against a scalar reference at every length 0..257 and misaligned offsets.
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
}

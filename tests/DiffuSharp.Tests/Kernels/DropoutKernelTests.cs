// The dropout mask kernel (Kernels/Dropout.cs) against its scalar reference: every length 0..257, lengths that
// cross chunk boundaries, misaligned offsets, in place, the accumulating backward form, and 1 or 2 threads.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public class DropoutKernelTests
{
    public static IEnumerable<object[]> Lengths => Enumerable.Range(0, 258).Select(n => new object[] { n });

    static void Check(int n, float p, ulong key)
    {
        var expected = new float[n];
        DropoutMask.Reference(key, p, expected);
        for (int offset = 0; offset <= 3; offset++)
        {
            var big = new float[n + 8];
            new Rng((ulong)(n + offset)).FillUniform(big, -2f, 2f);
            var x = big.AsSpan(offset, n).ToArray();
            var dst = new float[n + 8];
            DropoutMask.Apply(key, p, big.AsSpan(offset, n), dst.AsSpan(3 - offset, n));
            for (int i = 0; i < n; i++) Assert.Equal(x[i] * expected[i], dst[3 - offset + i]);

            var acc = new float[n + 4];
            new Rng((ulong)(7 * n + offset)).FillUniform(acc, -1f, 1f);
            var accBefore = acc.AsSpan(offset, n).ToArray();
            DropoutMask.ApplyAdd(key, p, big.AsSpan(offset, n), acc.AsSpan(offset, n));
            for (int i = 0; i < n; i++) Assert.Equal(accBefore[i] + x[i] * expected[i], acc[offset + i]);

            DropoutMask.Apply(key, p, big.AsSpan(offset, n), big.AsSpan(offset, n));       // in place
            for (int i = 0; i < n; i++) Assert.Equal(x[i] * expected[i], big[offset + i]);
        }
    }

    [Theory, MemberData(nameof(Lengths))]
    public void Mask_matches_the_reference_at_every_length(int n)
    {
        Check(n, 0.1f, 12345);
        Check(n, 0.5f, (ulong)n);
    }

    [Theory]
    [InlineData(DropoutMask.ChunkLength - 1)]
    [InlineData(DropoutMask.ChunkLength + 5)]
    [InlineData(3 * DropoutMask.ChunkLength + 13)]
    [InlineData(40 * DropoutMask.ChunkLength + 3)]
    public void Mask_matches_the_reference_across_chunks_on_1_and_2_threads(int n)
    {
        var expected = new float[n];
        DropoutMask.Reference(99, 0.3f, expected);
        int saved = Parallelism.MaxThreads;
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Parallelism.MaxThreads = threads;
                var mask = new float[n];
                DropoutMask.Fill(99, 0.3f, mask);
                Assert.Equal(expected, mask);
            }
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Fact]
    public void Chunks_and_keys_draw_different_masks_and_p_0_or_1_are_exact()
    {
        var mask = new float[2 * DropoutMask.ChunkLength];
        DropoutMask.Fill(5, 0.5f, mask);
        Assert.NotEqual(mask[..DropoutMask.ChunkLength], mask[DropoutMask.ChunkLength..]);
        var other = new float[mask.Length];
        DropoutMask.Fill(6, 0.5f, other);
        Assert.NotEqual(mask, other);
        DropoutMask.Fill(5, 0f, mask);
        Assert.All(mask, v => Assert.Equal(1f, v));
        DropoutMask.Fill(5, 1f, mask);
        Assert.All(mask, v => Assert.Equal(0f, v));
    }
}

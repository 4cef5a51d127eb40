// AlignedScratch: the pointer lies on a 64-byte boundary with the asked floats behind it inside the rented array,
// stays put while held, and default holds nothing.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

public unsafe class AlignedScratchTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(1000)]
    [InlineData(100_003)]
    public void Pointer_is_64_byte_aligned_with_room_for_the_floats(int floats)
    {
        for (int i = 0; i < 8; i++)                     // several rentals: arrays of every alignment come back
        {
            using var s = new AlignedScratch(floats);
            Assert.Equal(0, (long)s.Pointer % 64);
            for (int j = 0; j < floats; j++) s.Pointer[j] = j;
            GC.Collect();                               // pinned: a collection must not move it
            for (int j = 0; j < floats; j++) Assert.Equal(j, s.Pointer[j]);
        }
    }

    [Fact]
    public void Align_moves_to_the_next_boundary_within_the_slack()
    {
        float* block = stackalloc float[64];
        for (int k = 0; k < 16; k++)
        {
            float* p = block + k, a = AlignedScratch.Align(p);
            Assert.Equal(0, (long)a % 64);
            Assert.True(a >= p && a - p <= AlignedScratch.Slack, $"offset {a - p} for a start {k} floats in");
        }
    }

    [Fact]
    public void Default_holds_nothing_and_dispose_is_idempotent()
    {
        var none = default(AlignedScratch);
        Assert.True(none.Pointer == null);
        none.Dispose();
        var s = new AlignedScratch(10);
        s.Dispose();
        s.Dispose();
    }
}

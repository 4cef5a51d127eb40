// Long elementwise maps are split over threads at multiples of the vector width, so every element but the last few
// of the whole input runs through the vector operator whatever the thread count, and a batch cut in two (each part
// a multiple of 8 long) gives the same bits as the whole: the scalar and vector Exp round differently.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public class ElementwiseSplitTests
{
    static float[] Input(int n, ulong seed, float lo = -4f, float hi = 4f)
    {
        var a = new float[n];
        new Rng(seed).FillUniform(a, lo, hi);
        return a;
    }

    static T WithThreads<T>(int threads, Func<T> body)
    {
        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = threads;
        try { return body(); }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Theory]
    [InlineData(40_003)]
    [InlineData(65_537)]
    [InlineData(3 * 25_088)]
    public void Long_maps_give_the_same_bits_on_1_and_2_threads(int n)
    {
        var x = Input(n, 1); var b = Input(n, 2, 0.5f, 3f);
        float[] Silu() { var y = new float[n]; Unary.Map<SiluOp>(x, y); return y; }
        float[] SiluGrad() { var y = new float[n]; Binary.Map<SiluGradOp>(b, x, y); return y; }
        Assert.Equal(WithThreads(1, Silu), WithThreads(2, Silu));
        Assert.Equal(WithThreads(1, SiluGrad), WithThreads(2, SiluGrad));
    }

    [Fact]
    public void A_batch_cut_in_two_gives_the_same_bits_as_the_whole()
    {
        const int image = 32 * 28 * 28;                          // a multiple of 8, like every UNet activation
        var x = Input(3 * image, 3);
        var whole = new float[x.Length];
        Unary.Map<SiluOp>(x, whole);
        var first = new float[2 * image]; var last = new float[image];
        Unary.Map<SiluOp>(x.AsSpan(0, 2 * image), first);
        Unary.Map<SiluOp>(x.AsSpan(2 * image), last);
        Assert.True(whole.AsSpan(0, 2 * image).SequenceEqual(first) && whole.AsSpan(2 * image).SequenceEqual(last));
    }
}

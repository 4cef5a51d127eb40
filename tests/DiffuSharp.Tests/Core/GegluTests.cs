// The fused GEGLU op (Kernels/Geglu.cs, Ops.Geglu): against its scalar reference at row widths with and without a
// partial last vector, bit for bit against Chunk + Gelu + product where every element goes through the vector GELU,
// its gradient against finite differences and against the composed ops' gradient, and its shape check.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

public class GegluTests
{
    [Theory]
    [InlineData(5, 1)]
    [InlineData(7, 13)]
    [InlineData(3, 16)]
    [InlineData(40, 24)]
    public void Geglu_matches_its_scalar_reference(int rows, int f)
    {
        var x = Tensor.RandN([rows, 2 * f], new Rng(41), std: 2f);
        var expect = new float[rows * f];
        Geglu.Reference(x.ToArray(), rows, f, expect);
        var y = x.Geglu();
        Assert.Equal(new[] { rows, f }, y.Shape);
        GradCheck.AssertClose(expect, y.ToArray(), 4e-6, 1e-7, "geglu");
    }

    [Fact]
    public void Geglu_gives_the_bits_of_chunk_gelu_and_product_and_their_gradient()
    {
        var rng = new Rng(42);
        var x = Tensor.RandN([2, 6, 32], rng, std: 2f).RequireGrad();       // F = 16: whole vectors only
        var w = Tensor.RandN([2, 6, 16], rng);
        var fused = x.Geglu();
        (fused * w).Sum().Backward();
        var gFused = x.Grad!.ToArray();
        x.Grad = null;
        var parts = x.Chunk(2, -1);
        var composed = parts[0] * parts[1].Gelu();
        (composed * w).Sum().Backward();
        Assert.True(fused.ToArray().AsSpan().SequenceEqual(composed.ToArray()), "fused GEGLU differs from the composed ops");
        GradCheck.AssertClose(x.Grad!.ToArray(), gFused, 1e-6, 1e-7, "dx");
    }

    [Fact]
    public void Geglu_gradient_matches_finite_differences()
    {
        var rng = new Rng(43);
        var x = Tensor.RandN([3, 2 * 11], rng).RequireGrad();                // F = 11: a partial vector per row
        GradCheck.Check(xs => xs[0].Geglu(), [x], rng);
    }

    [Fact]
    public void Geglu_rejects_an_odd_last_axis()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Zeros([2, 5]).Geglu());
        Assert.Contains("(2, 5)", e.Message.Replace("[", "(").Replace("]", ")").Replace("×", ", "));
    }
}

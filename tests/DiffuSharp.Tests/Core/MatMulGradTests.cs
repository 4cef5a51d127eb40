using DiffuSharp;
using Xunit;

namespace DiffuSharp.Tests.Core;

public class MatMulGradTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 17, 5)]
    [InlineData(17, 33, 3)]
    public void MatMul_2d_backward_matches_finite_differences(int m, int k, int n)
    {
        var rng = new Rng(20);
        GradCheck.Check(x => x[0].MatMul(x[1]), [GradCheck.Randn(rng, m, k), GradCheck.Randn(rng, k, n)], rng);
    }

    [Fact]
    public void MatMul_batched_and_broadcast_and_transposed_views_match_finite_differences()
    {
        var rng = new Rng(21);
        GradCheck.Check(x => x[0].MatMul(x[1]), [GradCheck.Randn(rng, 3, 5, 7), GradCheck.Randn(rng, 3, 7, 2)], rng);
        GradCheck.Check(x => x[0].MatMul(x[1]), [GradCheck.Randn(rng, 2, 3, 5, 7), GradCheck.Randn(rng, 7, 4)], rng);
        GradCheck.Check(x => x[0].MatMul(x[1]), [GradCheck.Randn(rng, 5, 7), GradCheck.Randn(rng, 3, 7, 4)], rng);
        GradCheck.Check(x => x[0].Transpose(-1, -2).MatMul(x[1]), [GradCheck.Randn(rng, 3, 7, 5), GradCheck.Randn(rng, 3, 7, 2)], rng);
        GradCheck.Check(x => x[0].MatMul(x[1].Transpose(-1, -2)), [GradCheck.Randn(rng, 3, 5, 7), GradCheck.Randn(rng, 3, 2, 7)], rng);
        GradCheck.Check(x => x[0].Transpose(-1, -2).MatMul(x[1]), [GradCheck.Randn(rng, 3, 7, 5), GradCheck.Randn(rng, 7, 2)], rng);
    }

    [Fact]
    public void MatMul_values_match_naive_product()
    {
        var a = Tensor.Arange(0, 6).Reshape(2, 3);
        var b = Tensor.Arange(0, 12).Reshape(3, 4);
        Assert.Equal(new float[] { 20, 23, 26, 29, 56, 68, 80, 92 }, a.MatMul(b).ToArray());
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(17, 3, 5)]
    public void Linear_backward_matches_finite_differences(int rows, int inF, int outF)
    {
        var rng = new Rng(22);
        GradCheck.Check(x => Tensor.Linear(x[0], x[1], x[2]), [GradCheck.Randn(rng, 2, rows, inF), GradCheck.Randn(rng, outF, inF), GradCheck.Randn(rng, outF)], rng);
    }

    [Fact]
    public void MatMul_inner_mismatch_names_both_shapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(2, 3).MatMul(Tensor.Zeros(4, 5)));
        Assert.Contains("(2, 3)", ex.Message);
        Assert.Contains("(4, 5)", ex.Message);
    }
}

using DiffuSharp;
using Xunit;

namespace DiffuSharp.Tests.Core;

public class ReduceMovementGradTests
{
    [Theory]
    [InlineData(new[] { 17 }, new int[0])]
    [InlineData(new[] { 3, 17 }, new[] { 1 })]
    [InlineData(new[] { 3, 17 }, new[] { 0 })]
    [InlineData(new[] { 2, 3, 5, 4 }, new[] { 1, 3 })]
    [InlineData(new[] { 2, 3, 5, 4 }, new[] { -1, -2 })]
    public void Sum_mean_var_backward_match_finite_differences(int[] shape, int[] axes)
    {
        var rng = new Rng(10);
        GradCheck.Check(x => x[0].Sum(axes), [GradCheck.Randn(rng, shape)], rng);
        GradCheck.Check(x => x[0].Mean(axes, keepDim: true), [GradCheck.Randn(rng, shape)], rng);
        GradCheck.Check(x => x[0].Var(axes), [GradCheck.Randn(rng, shape)], rng);
    }

    [Theory]
    [InlineData(new[] { 17 }, 0)]
    [InlineData(new[] { 3, 17 }, 1)]
    [InlineData(new[] { 3, 5, 4 }, 1)]
    public void Max_backward_matches_finite_differences(int[] shape, int axis)
    {
        var rng = new Rng(11);
        GradCheck.Check(x => x[0].Max(axis), [GradCheck.Randn(rng, shape)], rng);
    }

    [Theory]
    [InlineData(new[] { 1, 1 }, -1)]
    [InlineData(new[] { 3, 17 }, -1)]
    [InlineData(new[] { 3, 17 }, 0)]
    [InlineData(new[] { 2, 33, 3 }, 1)]
    public void Softmax_and_log_softmax_backward_match_finite_differences(int[] shape, int axis)
    {
        var rng = new Rng(12);
        GradCheck.Check(x => x[0].Softmax(axis), [GradCheck.Randn(rng, shape)], rng);
        GradCheck.Check(x => x[0].LogSoftmax(axis), [GradCheck.Randn(rng, shape)], rng);
    }

    [Fact]
    public void Softmax_of_large_logits_does_not_overflow()
    {
        var y = Tensor.FromArray([1000f, 1000f, -1000f], 1, 3).Softmax();
        Assert.Equal(new[] { 0.5f, 0.5f, 0f }, y.ToArray());
    }

    [Fact]
    public void Views_backward_match_finite_differences()
    {
        var rng = new Rng(13);
        GradCheck.Check(x => x[0].Permute(2, 0, 1) * 1.0, [GradCheck.Randn(rng, 3, 5, 4)], rng);
        GradCheck.Check(x => x[0].Transpose(0, 1).Contiguous(), [GradCheck.Randn(rng, 3, 17)], rng);
        GradCheck.Check(x => x[0].Reshape(5, -1), [GradCheck.Randn(rng, 3, 5, 1)], rng);
        GradCheck.Check(x => x[0].Slice(1, 2, 3) * 2.0, [GradCheck.Randn(rng, 3, 17)], rng);
        GradCheck.Check(x => x[0].Expand(4, 3, 17) * 1.0, [GradCheck.Randn(rng, 3, 1)], rng);
        GradCheck.Check(x => x[0].Permute(1, 0).Reshape(-1), [GradCheck.Randn(rng, 3, 17)], rng);
    }

    [Fact]
    public void Concat_split_chunk_index_select_backward_match_finite_differences()
    {
        var rng = new Rng(14);
        GradCheck.Check(x => Tensor.Concat([x[0], x[1]], 1), [GradCheck.Randn(rng, 2, 3, 5), GradCheck.Randn(rng, 2, 1, 5)], rng);
        GradCheck.Check(x => x[0].Chunk(3, 1)[1] * x[0].Chunk(3, 1)[2], [GradCheck.Randn(rng, 2, 33)], rng);
        GradCheck.Check(x => x[0].Split([1, 2], 0)[1] * 1.0, [GradCheck.Randn(rng, 3, 17)], rng);
        GradCheck.Check(x => x[0].IndexSelect(0, [2, 0, 2, 1]), [GradCheck.Randn(rng, 3, 17)], rng);
        GradCheck.Check(x => Tensor.Embedding(x[0], [4, 4, 0]), [GradCheck.Randn(rng, 5, 3)], rng);
    }

    [Fact]
    public void Permute_and_slice_share_storage_and_read_correct_values()
    {
        var x = Tensor.Arange(0, 24).Reshape(2, 3, 4);
        Assert.Equal(new float[] { 0, 12, 4, 16, 8, 20 }, x.Permute(2, 1, 0).Slice(0, 0, 1).ToArray());
        Assert.Equal(new float[] { 5, 6, 17, 18 }, x.Slice(1, 1, 1).Slice(2, 1, 2).ToArray());
        Assert.Equal(new float[] { 0, 1, 2, 3, 0, 1, 2, 3 }, Tensor.Arange(0, 4).Expand(2, 4).ToArray());
    }

    [Fact]
    public void Mse_loss_backward_matches_finite_differences()
    {
        var rng = new Rng(15);
        GradCheck.Check(x => Tensor.MseLoss(x[0], x[1]), [GradCheck.Randn(rng, 3, 17), GradCheck.Randn(rng, 3, 17)], rng);
    }

    [Fact]
    public void Reshape_with_wrong_count_names_shapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3, 5).Reshape(4, 4));
        Assert.Contains("(3, 5)", ex.Message);
        Assert.Contains("(4, 4)", ex.Message);
    }
}

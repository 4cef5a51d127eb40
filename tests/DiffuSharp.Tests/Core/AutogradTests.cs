using DiffuSharp;
using Xunit;

namespace DiffuSharp.Tests.Core;

public class AutogradTests
{
    [Fact]
    public void Gradients_accumulate_across_backward_calls()
    {
        var x = Tensor.FromArray([1f, 2f, 3f], 3).RequireGrad();
        (x * 2.0).Sum().Backward();
        (x * 3.0).Sum().Backward();
        Assert.Equal(new[] { 5f, 5f, 5f }, x.Grad!.ToArray());
    }

    [Fact]
    public void A_tensor_used_twice_gets_both_gradients()
    {
        var x = Tensor.FromArray([1f, 2f], 2).RequireGrad();
        (x * x + x).Sum().Backward();    // d/dx (x² + x) = 2x + 1
        Assert.Equal(new[] { 3f, 5f }, x.Grad!.ToArray());
    }

    [Fact]
    public void NoGrad_records_nothing_and_detach_cuts_the_graph()
    {
        var x = Tensor.FromArray([1f, 2f], 2).RequireGrad();
        using (Tensor.NoGrad()) Assert.False((x * 2.0).RequiresGrad);
        Assert.True((x * 2.0).RequiresGrad);
        Assert.False(x.Detach().RequiresGrad);
    }

    [Fact]
    public void Backward_releases_the_graph()
    {
        var x = Tensor.FromArray([1f, 2f], 2).RequireGrad();
        var h = x.Exp();
        var loss = h.Sum();
        loss.Backward();
        Assert.True(h.IsLeaf);                 // node dropped
        Assert.Null(h.Grad);                   // intermediate gradient freed
        var ex = Assert.Throws<InvalidOperationException>(() => loss.Backward());
        Assert.Contains("released", ex.Message);
    }

    [Fact]
    public void Deep_chains_do_not_overflow_the_stack()
    {
        var x = Tensor.FromArray([0.5f], 1).RequireGrad();
        var h = x;
        for (int i = 0; i < 20000; i++) h = h * 1.0;
        h.Sum().Backward();
        Assert.Equal(1f, x.Grad!.Item());
    }

    [Fact]
    public void Rng_same_seed_same_numbers_and_state_round_trips()
    {
        var a = new Rng(42); var b = new Rng(42);
        var ta = Tensor.RandN([1000], a); var tb = Tensor.RandN([1000], b);
        Assert.Equal(ta.ToArray(), tb.ToArray());
        var state = a.GetState();
        var next = a.NextNormal();
        b.SetState(state);
        Assert.Equal(next, b.NextNormal());
        var v = ta.ToArray();
        double mean = v.Average(), var = v.Select(z => (z - mean) * (z - mean)).Average();
        Assert.InRange(mean, -0.1, 0.1);
        Assert.InRange(var, 0.9, 1.1);
    }
}

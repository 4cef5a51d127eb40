// TensorScope: storage comes from the pool inside a scope and goes back when it ends, recycled storage is never
// readable through a released tensor, Keep moves storage outwards, and state that outlives a step (leaf gradients,
// parameters, EMA copies) never comes from a scope. Each test uses its own odd lengths so that tests running in
// parallel never rent the same pool bucket.
using System.Runtime.CompilerServices;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Memory;

internal static class PoolPoison
{
    /// <summary>Every array handed back to the pool during the test run is filled with NaN, so any op that reads
    /// recycled memory it did not write first produces NaN and fails the bit-identity tests.</summary>
    [ModuleInitializer]
    internal static void Enable() => TensorPool.PoisonOnReturn = true;
}

public class TensorScopeTests
{
    [Fact]
    public void A_scope_returns_its_storage_and_the_next_scope_reuses_it()
    {
        float[] first;
        using (var scope = TensorScope.Begin())
        {
            var t = Tensor.Zeros(5003);
            first = t.Storage;
            Assert.Equal(5003L * 4, scope.LiveBytes);
        }
        using (TensorScope.Begin())
        {
            var u = Tensor.Zeros(5003);
            Assert.Same(first, u.Storage);
            Assert.All(u.ToArray(), v => Assert.Equal(0f, v));     // recycled (and NaN-poisoned) storage is cleared
        }
    }

    [Fact]
    public void Outside_a_scope_and_below_the_threshold_storage_is_an_ordinary_array()
    {
        var outside = Tensor.Zeros(5009);
        Assert.Null(outside.Lease);
        Tensor small;
        using (var scope = TensorScope.Begin())
        {
            small = Tensor.Ones(TensorPool.MinPooledLength - 1);
            Assert.Null(small.Lease);
            Assert.Equal(0, scope.LiveBytes);
        }
        Assert.Equal(TensorPool.MinPooledLength - 1, small.ToArray().Sum());
        Assert.False(small.IsReleased);
    }

    [Fact]
    public void Using_a_tensor_or_any_view_of_it_after_its_scope_throws_a_clear_error()
    {
        Tensor t, view, slice, detached;
        using (TensorScope.Begin())
        {
            t = Tensor.Ones(8, 631);
            view = t.Reshape(631, 8);
            slice = t.Slice(1, 3, 100);
            detached = t.Detach();
        }
        foreach (var x in new[] { t, view, slice, detached })
        {
            Assert.True(x.IsReleased);
            var e = Assert.Throws<ObjectDisposedException>(() => x.ToArray());
            Assert.Contains("TensorScope", e.Message);
            Assert.Contains("Keep", e.Message);
        }
        Assert.Throws<ObjectDisposedException>(() => t.Data.Length);
        Assert.Contains("released", t.ToString());                 // debuggers may still print it
        Assert.Throws<ObjectDisposedException>(() => (t + 1.0).Count);
        Assert.Contains("(8, 631)", Assert.Throws<ObjectDisposedException>(() => t.Sum()).Message);
    }

    [Fact]
    public void A_view_made_after_the_storage_was_released_still_throws()
    {
        Tensor t;
        using (TensorScope.Begin()) t = Tensor.Ones(5021);
        Assert.Throws<ObjectDisposedException>(() => t.Reshape(1, 5021));
    }

    [Fact]
    public void Keep_moves_storage_to_the_enclosing_scope_and_from_the_outermost_to_the_gc()
    {
        Tensor kept, keptView, dropped, forever;
        using (var outer = TensorScope.Begin())
        {
            using (var inner = TensorScope.Begin())
            {
                kept = Tensor.Full([5039], 2f);
                keptView = kept.Reshape(1, 5039);
                dropped = Tensor.Full([5039], 3f);
                Assert.Same(kept, inner.Keep(kept));
            }
            Assert.True(dropped.IsReleased);
            Assert.Equal(2f * 5039, kept.Sum().Item());
            Assert.Equal(2f * 5039, keptView.Sum().Item());
            forever = outer.Keep(Tensor.Full([5051], 4f));
        }
        Assert.True(kept.IsReleased);
        Assert.True(keptView.IsReleased);
        Assert.False(forever.IsReleased);
        Assert.Null(forever.Lease!.Owner);
        using (TensorScope.Begin())
            Assert.NotSame(forever.Storage, Tensor.Zeros(5051).Storage);   // the GC owns it now: never handed out again
        Assert.Equal(4f * 5051, forever.Sum().Item());
    }

    [Fact]
    public void Keep_leaves_storage_of_an_outer_scope_where_it_is()
    {
        using var outer = TensorScope.Begin();
        var a = Tensor.Ones(5059);
        using (var inner = TensorScope.Begin()) inner.Keep(a);
        Assert.Same(outer, a.Lease!.Owner);
    }

    [Fact]
    public void Scopes_must_end_innermost_first_and_suspend_restores_the_scope()
    {
        var outer = TensorScope.Begin();
        var inner = TensorScope.Begin();
        Assert.Throws<InvalidOperationException>(() => outer.Dispose());
        using (TensorScope.Suspend())
        {
            Assert.Null(TensorScope.Current);
            Assert.Null(Tensor.Zeros(5077).Lease);
        }
        Assert.Same(inner, TensorScope.Current);
        inner.Dispose();
        outer.Dispose();
        Assert.Null(TensorScope.Current);
        Assert.Throws<ObjectDisposedException>(() => outer.Keep(Tensor.Zeros(3)));
    }

    [Fact]
    public void Another_thread_does_not_see_this_threads_scope()
    {
        using var scope = TensorScope.Begin();
        Tensor? other = null;
        var th = new Thread(() => other = Tensor.Zeros(5081));
        th.Start();
        th.Join();
        Assert.Null(other!.Lease);
    }

    [Fact]
    public void Leaf_gradients_and_parameters_outlive_the_scope_and_match_an_unscoped_run()
    {
        static (float[] Grad, Tensor X) Run(bool scoped)
        {
            var x = Tensor.RandN([7, 733], new Rng(1)).RequireGrad();
            using (scoped ? TensorScope.Begin() : null)
            {
                var y = (x * 1.5).Exp() * x;
                (y.Sum() * 0.25).Backward();
            }
            return (x.Grad!.ToArray(), x);
        }
        var (reference, _) = Run(scoped: false);
        var (grad, leaf) = Run(scoped: true);
        Assert.Null(leaf.Grad!.Lease);
        Assert.Equal(reference, grad);

        // A module's parameters made inside a scope are the GC's, not the scope's.
        UNetModelParameters(out var p);
        Assert.All(p, t => Assert.False(t.IsReleased));
    }

    static void UNetModelParameters(out IReadOnlyList<Tensor> parameters)
    {
        using (TensorScope.Begin())
            parameters = new DiffuSharp.NN.UNetModel(new DiffuSharp.NN.UNetConfig(InChannels: 1, ModelChannels: 32, OutChannels: 1, NumResBlocks: 1,
                AttentionResolutions: [], ChannelMult: [1]), new Rng(2)).Parameters();
    }

    [Fact]
    public void Ema_copies_made_inside_a_scope_survive_it()
    {
        var p = Tensor.RandN([5099], new Rng(3));
        Ema ema;
        using (TensorScope.Begin()) ema = new Ema([p], 0.9);
        Assert.Equal(p.ToArray(), ema.Shadow[0].ToArray());
    }

    [Fact]
    public void Backward_returns_each_consumed_gradient_buffer_at_once()
    {
        // A chain of n unary ops over one length: n + 1 activations stay alive until the scope ends, but without
        // early release every non-leaf gradient would too (2n + 1 buffers); with it only a couple are alive at once.
        const int n = 12, len = 5101;
        var x = Tensor.RandN([len], new Rng(4)).RequireGrad();
        using var scope = TensorScope.Begin();
        var h = x;
        for (int i = 0; i < n; i++) h = (h * 0.5).Tanh();     // two ops per round
        h.Sum().Backward();
        long buffer = len * 4L;
        Assert.True(scope.PeakBytes <= (2 * n + 4) * buffer, $"peak {scope.PeakBytes / buffer} buffers for {2 * n} activations");
        Assert.True(scope.PeakBytes >= 2 * n * buffer);
        Assert.NotNull(x.Grad);
    }

    [Fact]
    public void A_released_gradient_buffer_throws_when_read_through_a_view_saved_in_backward()
    {
        // A view of dy kept past its node's backward sees the buffer released, never the next gradient's values.
        var x = Tensor.RandN([5107], new Rng(5)).RequireGrad();
        using var scope = TensorScope.Begin();
        var y = x * 2.0;
        var z = y.Exp();
        var saved = new List<Tensor>();
        var spy = DiffuSharp.Autograd.Graph.Record("Spy", Tensor.Uninitialized([5107]).Also(t => z.Data.CopyTo(t.Data)), z, dy =>
        {
            saved.Add(dy.Reshape(1, 5107));
            dy.Data.CopyTo(z.GradData());
        });
        spy.Sum().Backward();
        var e = Assert.Throws<ObjectDisposedException>(() => saved[0].ToArray());
        Assert.Contains("Backward", e.Message);
    }
}

internal static class TensorTestExtensions
{
    public static Tensor Also(this Tensor t, Action<Tensor> action) { action(t); return t; }
}

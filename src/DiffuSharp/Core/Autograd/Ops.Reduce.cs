// Differentiable reductions: sum and max over axes, and the fused softmax / log-softmax. Sums are the inverse of
// broadcasting (a zero-stride scatter-add, accumulated in double along the reduced run), so their backward is a
// broadcast gather. Mean and variance are composed from these in Tensor.Math.cs.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static partial class Ops
{
    /// <summary>Sum over the given axes (all axes when empty).</summary>
    public static Tensor Sum(Tensor x, int[] axes, bool keepDim)
    {
        var keep = ReducedShape(x, axes, "Sum", out var dropped);
        x = x.Contiguous();
        var y = new Tensor(keep);
        Strided.ScatterAdd(x.Data, y.Storage, 0, x.ShapeSpan, BroadcastStrides(y, x.ShapeSpan));
        var result = keepDim ? y : Tensor.ViewOf(y, 0, dropped, ShapeUtil.ContiguousStrides(dropped));
        return Graph.Record("Sum", result, x, dy =>
        {
            // y = Σ x over axes  =>  dx += dy broadcast back over them
            var dyKeep = Tensor.ViewOf(dy, dy.Offset, keep, ShapeUtil.ContiguousStrides(keep));
            Strided.GatherAdd(dy.Storage, dy.Offset, x.ShapeSpan, BroadcastStrides(dyKeep, x.ShapeSpan), x.GradData());
        });
    }

    /// <summary>Maximum along one axis; the gradient goes to the first maximal element.</summary>
    public static Tensor Max(Tensor x, int axis, bool keepDim)
    {
        int ax = ShapeUtil.Axis(axis, x.Rank, "Max");
        var keep = ReducedShape(x, [ax], "Max", out var dropped);
        x = x.Contiguous();
        int n = x.ShapeSpan[ax], outer = 1, inner = 1;
        if (n == 0) throw new ArgumentException($"Max over an empty axis {axis} of shape {ShapeUtil.Format(x.ShapeSpan)}");
        for (int i = 0; i < ax; i++) outer *= x.ShapeSpan[i];
        for (int i = ax + 1; i < x.Rank; i++) inner *= x.ShapeSpan[i];
        var y = Tensor.Uninitialized(keepDim ? keep : dropped);
        var arg = new int[outer * inner];
        var xs = x.Data; var ys = y.Data;
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                int best = 0; float m = xs[o * n * inner + i];
                for (int r = 1; r < n; r++)
                {
                    float v = xs[(o * n + r) * inner + i];
                    if (v > m || float.IsNaN(v) && !float.IsNaN(m)) { m = v; best = r; }
                }
                ys[o * inner + i] = m; arg[o * inner + i] = best;
            }
        return Graph.Record("Max", y, x, dy =>
        {
            var g = x.GradData(); var d = dy.Data;
            for (int o = 0; o < outer; o++)
                for (int i = 0; i < inner; i++)
                    g[(o * n + arg[o * inner + i]) * inner + i] += d[o * inner + i];
        });
    }

    /// <summary>softmax along axis, with the maximum subtracted first so exp never overflows.</summary>
    public static Tensor Softmax(Tensor x, int axis) => SoftmaxCore(x, axis, log: false);

    /// <summary>log-softmax along axis: x − max − log Σ exp(x − max).</summary>
    public static Tensor LogSoftmax(Tensor x, int axis) => SoftmaxCore(x, axis, log: true);

    static Tensor SoftmaxCore(Tensor x, int axis, bool log)
    {
        int ax = ShapeUtil.Axis(axis, x.Rank, log ? "LogSoftmax" : "Softmax");
        x = x.Contiguous();
        int n = x.ShapeSpan[ax], outer = 1, inner = 1;
        for (int i = 0; i < ax; i++) outer *= x.ShapeSpan[i];
        for (int i = ax + 1; i < x.Rank; i++) inner *= x.ShapeSpan[i];
        var y = Tensor.Uninitialized(x.Shape);
        if (inner == 1) Kernels.Softmax.Rows(x.Data, y.Data, outer, n, log);
        else Kernels.Softmax.Strided(x.Data, y.Data, outer, n, inner, log);
        return Graph.Record(log ? "LogSoftmax" : "Softmax", y, x, dy =>
        {
            // softmax:     dx = y ⊙ (dy − Σ dy ⊙ y)
            // log-softmax: dx = dy − softmax(x) · Σ dy
            if (inner == 1) Kernels.Softmax.BackwardRows(y.Data, dy.Data, x.GradData(), outer, n, log);
            else Kernels.Softmax.BackwardStrided(y.Data, dy.Data, x.GradData(), outer, n, inner, log);
        });
    }

    /// <summary>Shape with reduced axes kept as 1 (keep) and removed (dropped). Empty axes = all.</summary>
    static int[] ReducedShape(Tensor x, int[] axes, string op, out int[] dropped)
    {
        var reduce = new bool[x.Rank];
        if (axes.Length == 0) Array.Fill(reduce, true);
        foreach (int a in axes)
        {
            int ax = ShapeUtil.Axis(a, x.Rank, op);
            if (reduce[ax] && axes.Length > 0) throw new ArgumentException($"{op}: axis {a} repeated");
            reduce[ax] = true;
        }
        var keep = x.Shape;
        var drop = new List<int>();
        for (int i = 0; i < x.Rank; i++)
        {
            if (reduce[i]) keep[i] = 1;
            else drop.Add(x.ShapeSpan[i]);
        }
        dropped = drop.ToArray();
        return keep;
    }
}

// Differentiable movement ops. Views (reshape of a contiguous tensor, permute, slice, expand) share storage:
// each is an (offset, strides) transform, applied to the input for the forward and to the input's contiguous
// gradient layout for the backward, which is then one strided scatter-add. Copies: contiguous, concat, index-select.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    delegate (int Offset, int[] Strides) ViewTransform(int offset, ReadOnlySpan<int> strides);

    static Tensor View(string name, Tensor x, int[] shape, ViewTransform transform)
    {
        var (offset, strides) = transform(x.Offset, x.StridesSpan);
        var y = Tensor.ViewOf(x, offset, shape, strides);
        return Graph.Record(name, y, x, dy =>
        {
            // The gradient flows back through the same view of x's (contiguous) gradient buffer.
            x.GradData();
            var (gOffset, gStrides) = transform(x.Grad!.Offset, ShapeUtil.ContiguousStrides(x.ShapeSpan));
            Strided.ScatterAdd(dy.Data, x.Grad.Storage, gOffset, shape, gStrides);
        });
    }

    public static Tensor Contiguous(Tensor x)
    {
        if (x.IsContiguous) return x;
        var y = Tensor.Uninitialized(x.Shape);
        Strided.Gather(x.Storage, x.Offset, x.ShapeSpan, x.StridesSpan, y.Data);
        // y = copy of view x  =>  dx += dy (x's own gradient buffer is contiguous: dy may simply become it)
        return Graph.Record("Contiguous", y, x, dy => x.AdoptOrAccumulateGrad(dy));
    }

    public static Tensor Reshape(Tensor x, int[] shape)
    {
        var target = ShapeUtil.ResolveReshape(x.ShapeSpan, shape);
        x = x.Contiguous();
        var y = Tensor.ViewOf(x, x.Offset, target, ShapeUtil.ContiguousStrides(target));
        // y is x's elements in the same order  =>  dx += dy, or dy seen in x's shape becomes dx
        return Graph.Record("Reshape", y, x, dy => x.AdoptOrAccumulateGrad(dy));
    }

    public static Tensor Permute(Tensor x, int[] axes)
    {
        if (axes.Length != x.Rank) throw new ArgumentException($"Permute: {axes.Length} axes given for a tensor of shape {ShapeUtil.Format(x.ShapeSpan)}");
        var seen = new bool[x.Rank];
        var perm = new int[x.Rank];
        for (int i = 0; i < axes.Length; i++)
        {
            int a = ShapeUtil.Axis(axes[i], x.Rank, "Permute");
            if (seen[a]) throw new ArgumentException($"Permute: axis {axes[i]} repeated in ({string.Join(", ", axes)})");
            seen[a] = true;
            perm[i] = a;
        }
        var shape = perm.Select(a => x.ShapeSpan[a]).ToArray();
        return View("Permute", x, shape, (offset, strides) =>
        {
            var s = new int[perm.Length];
            for (int i = 0; i < perm.Length; i++) s[i] = strides[perm[i]];
            return (offset, s);
        });
    }

    public static Tensor Transpose(Tensor x, int axis0, int axis1)
    {
        var axes = Enumerable.Range(0, x.Rank).ToArray();
        int a = ShapeUtil.Axis(axis0, x.Rank, "Transpose"), b = ShapeUtil.Axis(axis1, x.Rank, "Transpose");
        (axes[a], axes[b]) = (axes[b], axes[a]);
        return Permute(x, axes);
    }

    /// <summary>Elements [start, start + length) along axis (a view).</summary>
    public static Tensor Slice(Tensor x, int axis, int start, int length)
    {
        int ax = ShapeUtil.Axis(axis, x.Rank, "Slice");
        if (start < 0 || length < 0 || start + length > x.ShapeSpan[ax])
            throw new ArgumentException($"Slice: [{start}, {start + length}) is out of range for axis {axis} of shape {ShapeUtil.Format(x.ShapeSpan)}");
        var shape = x.Shape;
        shape[ax] = length;
        return View("Slice", x, shape, (offset, strides) => (offset + start * strides[ax], strides.ToArray()));
    }

    /// <summary>Broadcasts size-1 axes (and new leading axes) to shape, as a zero-stride view.</summary>
    public static Tensor Expand(Tensor x, int[] shape)
    {
        var result = ShapeUtil.Broadcast(x.ShapeSpan, shape, "Expand");
        if (!ShapeUtil.Equal(result, shape))
            throw new ArgumentException($"Expand: shape {ShapeUtil.Format(x.ShapeSpan)} cannot be expanded to {ShapeUtil.Format(shape)}");
        int lead = shape.Length - x.Rank;
        var xShape = x.Shape;
        return View("Expand", x, (int[])shape.Clone(), (offset, strides) =>
        {
            var s = new int[shape.Length];
            for (int i = 0; i < xShape.Length; i++) s[lead + i] = xShape[i] == 1 && shape[lead + i] != 1 ? 0 : strides[i];
            return (offset, s);
        });
    }

    public static Tensor Concat(IReadOnlyList<Tensor> xs, int axis)
    {
        if (xs.Count == 0) throw new ArgumentException("Concat needs at least one tensor");
        int rank = xs[0].Rank, ax = ShapeUtil.Axis(axis, rank, "Concat");
        var shape = xs[0].Shape;
        int total = 0;
        foreach (var t in xs)
        {
            bool ok = t.Rank == rank;
            for (int i = 0; ok && i < rank; i++) ok = i == ax || t.ShapeSpan[i] == shape[i];
            if (!ok) throw new ArgumentException($"Concat along axis {axis}: shape {ShapeUtil.Format(t.ShapeSpan)} does not match {ShapeUtil.Format(xs[0].ShapeSpan)} off that axis");
            total += t.ShapeSpan[ax];
        }
        shape[ax] = total;
        var y = Tensor.Uninitialized(shape);
        int outer = 1, inner = 1;
        for (int i = 0; i < ax; i++) outer *= shape[i];
        for (int i = ax + 1; i < rank; i++) inner *= shape[i];
        var inputs = xs.Select(t => t.Contiguous()).ToArray();
        int at = 0;
        foreach (var t in inputs)
        {
            // y[o, at + i] = t[o, i] per outer index o: blocks of chunk floats
            int chunk = t.ShapeSpan[ax] * inner;
            fixed (float* src = t.Data, dst = y.Data)
                Strided.CopyBlocks(src, chunk, dst + (long)at * inner, (long)total * inner, outer, chunk, accumulate: false);
            at += t.ShapeSpan[ax];
        }
        return Graph.Record("Concat", y, inputs, dy =>
        {
            // Each input's gradient is its block of dy (copied in when the input has no gradient yet).
            int pos = 0;
            foreach (var t in inputs)
            {
                int chunk = t.ShapeSpan[ax] * inner;
                if (t.RequiresGrad)
                {
                    fixed (float* src = dy.Data, g = t.GradForWrite(out bool accumulate))
                        Strided.CopyBlocks(src + (long)pos * inner, (long)total * inner, g, chunk, outer, chunk, accumulate);
                }
                pos += t.ShapeSpan[ax];
            }
        });
    }

    /// <summary>Rows indices[i] along axis, in order (repeats allowed); the backward scatter-adds.</summary>
    public static Tensor IndexSelect(Tensor x, int axis, int[] indices)
    {
        int ax = ShapeUtil.Axis(axis, x.Rank, "IndexSelect");
        int n = x.ShapeSpan[ax];
        foreach (int i in indices)
            if ((uint)i >= (uint)n) throw new ArgumentException($"IndexSelect: index {i} is out of range for axis {axis} of size {n} (shape {ShapeUtil.Format(x.ShapeSpan)})");
        x = x.Contiguous();
        var shape = x.Shape;
        shape[ax] = indices.Length;
        int outer = 1, inner = 1;
        for (int i = 0; i < ax; i++) outer *= shape[i];
        for (int i = ax + 1; i < x.Rank; i++) inner *= shape[i];
        var y = Tensor.Uninitialized(shape);
        var xs = x.Data; var ys = y.Data;
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < indices.Length; j++)
                xs.Slice((o * n + indices[j]) * inner, inner).CopyTo(ys.Slice((o * indices.Length + j) * inner, inner));
        return Graph.Record("IndexSelect", y, x, dy =>
        {
            var g = x.GradData(); var d = dy.Data;
            for (int o = 0; o < outer; o++)
                for (int j = 0; j < indices.Length; j++)
                    Binary.AddInPlace(g.Slice((o * n + indices[j]) * inner, inner), d.Slice((o * indices.Length + j) * inner, inner));
        });
    }
}

// Differentiable GEGLU, x (…, 2F) → h · gelu(gate) (…, F) with h, gate the two halves of the last axis: one fused
// kernel (Kernels/Geglu.cs) for what Chunk, Gelu and a product did in four passes.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    public static Tensor Geglu(Tensor x)
    {
        if (x.Rank < 1 || x.ShapeSpan[^1] % 2 != 0)
            throw new ArgumentException($"Geglu expects (…, 2F) with an even last axis, got {ShapeUtil.Format(x.ShapeSpan)}");
        x = x.Contiguous();
        int f = x.ShapeSpan[^1] / 2, rows = f == 0 ? 0 : x.Count / (2 * f);
        var shape = x.Shape; shape[^1] = f;
        var y = Tensor.Uninitialized(shape);
        if (y.Count > 0)
            fixed (float* px = x.Data, py = y.Data) Kernels.Geglu.Forward(px, rows, f, py);
        return Graph.Record("Geglu", y, x, dy =>
        {
            if (!x.RequiresGrad || y.Count == 0) return;
            fixed (float* px = x.Data, pd = dy.Contiguous().Data, pg = x.GradData()) Kernels.Geglu.Backward(px, pd, rows, f, pg);
        });
    }
}

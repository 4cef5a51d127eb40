// Differentiable 2×2 average pooling (F.avg_pool2d(x, 2): kernel 2, stride 2, odd sizes floor) and nearest ×2
// upsampling (F.interpolate(x, scale_factor=2, mode="nearest")), the down- and up-sampling of improved-diffusion's
// Downsample(use_conv=False) / Upsample. Each backward is the other's forward, scaled.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>x: (B, C, H, W) → (B, C, H/2, W/2), each output the mean of a 2×2 block.</summary>
    public static Tensor AvgPool2d2x2(Tensor x)
    {
        if (x.Rank != 4 || x.ShapeSpan[2] < 2 || x.ShapeSpan[3] < 2)
            throw new ArgumentException($"AvgPool2x2 expects input (B, C, H, W) with H, W ≥ 2, got {ShapeUtil.Format(x.ShapeSpan)}");
        x = x.Contiguous();
        int planes = x.ShapeSpan[0] * x.ShapeSpan[1], h = x.ShapeSpan[2], w = x.ShapeSpan[3];
        var y = Tensor.Uninitialized([x.ShapeSpan[0], x.ShapeSpan[1], h / 2, w / 2]);   // (B, C, H/2, W/2)
        fixed (float* px = x.Data, py = y.Data) Pool.Pool2x2(px, planes, h, w, py, 0.25f, accumulate: false);
        return Graph.Record("AvgPool2x2", y, x, dy =>
        {
            // forward was y[oy, ox] = ¼ Σ_{a,b∈{0,1}} x[2oy+a, 2ox+b], so dx[2oy+a, 2ox+b] += ¼ dy[oy, ox]
            // (an odd last row/column was never read and gets nothing)
            fixed (float* pd = dy.Data, pdx = x.GradData()) Pool.Dup2x2(pd, planes, h / 2, w / 2, pdx, h, w, 0.25f, accumulate: true);
        });
    }

    /// <summary>x: (B, C, H, W) → (B, C, 2H, 2W), each value copied into a 2×2 block.</summary>
    public static Tensor UpsampleNearest2x(Tensor x)
    {
        if (x.Rank != 4)
            throw new ArgumentException($"UpsampleNearest2x expects input (B, C, H, W), got {ShapeUtil.Format(x.ShapeSpan)}");
        x = x.Contiguous();
        int planes = x.ShapeSpan[0] * x.ShapeSpan[1], h = x.ShapeSpan[2], w = x.ShapeSpan[3];
        var y = Tensor.Uninitialized([x.ShapeSpan[0], x.ShapeSpan[1], 2 * h, 2 * w]);   // (B, C, 2H, 2W)
        fixed (float* px = x.Data, py = y.Data) Pool.Dup2x2(px, planes, h, w, py, 2 * h, 2 * w, 1f, accumulate: false);
        return Graph.Record("UpsampleNearest2x", y, x, dy =>
        {
            // forward was y[2i+a, 2j+b] = x[i, j], so dx[i, j] += Σ_{a,b∈{0,1}} dy[2i+a, 2j+b]
            fixed (float* pd = dy.Data, pdx = x.GradData()) Pool.Pool2x2(pd, planes, 2 * h, 2 * w, pdx, 1f, accumulate: true);
        });
    }
}

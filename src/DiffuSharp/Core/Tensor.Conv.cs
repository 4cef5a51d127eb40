// The public convolution API: conv2d, kernel-1 conv1d, 2×2 average pooling and nearest ×2 upsampling, thin
// delegations to Autograd/Ops.Conv2d.cs and Ops.Pool.cs (PyTorch's F.conv2d, F.conv1d, F.avg_pool2d(x, 2),
// F.interpolate(scale_factor=2, mode="nearest")).
using DiffuSharp.Autograd;

namespace DiffuSharp;

public sealed partial class Tensor
{
    /// <summary>2-D convolution with zero padding, as F.conv2d.</summary>
    /// <param name="x">(B, Cin, H, W)</param>
    /// <param name="weight">(Cout, Cin, kh, kw)</param>
    /// <param name="bias">(Cout) or null</param>
    /// <returns>(B, Cout, Ho, Wo), Ho = (H + 2·padding − kh)/stride + 1</returns>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias = null, int stride = 1, int padding = 0)
        => Ops.Conv2d(x, weight, bias, stride, padding);

    /// <summary>residual + Conv2d(x, weight, bias, stride, padding), the residual added as the output is written.</summary>
    /// <param name="residual">the output's shape (B, Cout, Ho, Wo)</param>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride, int padding, Tensor residual)
        => Ops.Conv2d(x, weight, bias, stride, padding, residual);

    /// <summary>1-D convolution with kernel size 1 (a linear map over channels at every position), as F.conv1d.</summary>
    /// <param name="x">(B, Cin, L)</param>
    /// <param name="weight">(Cout, Cin, 1)</param>
    /// <param name="bias">(Cout) or null</param>
    /// <returns>(B, Cout, L)</returns>
    public static Tensor Conv1d(Tensor x, Tensor weight, Tensor? bias = null) => Ops.Conv1d(x, weight, bias);

    /// <summary>residual + Conv1d(x, weight, bias), the residual added as each image's output is finished.</summary>
    /// <param name="residual">the output's shape (B, Cout, L)</param>
    public static Tensor Conv1d(Tensor x, Tensor weight, Tensor? bias, Tensor residual) => Ops.Conv1d(x, weight, bias, residual);

    /// <summary>2×2 average pooling with stride 2, as F.avg_pool2d(x, 2): (B, C, H, W) → (B, C, H/2, W/2), odd sizes floor.</summary>
    public Tensor AvgPool2x2() => Ops.AvgPool2d2x2(this);

    /// <summary>Nearest-neighbour ×2 upsampling, as F.interpolate(x, scale_factor=2, mode="nearest"): (B, C, H, W) → (B, C, 2H, 2W).</summary>
    public Tensor UpsampleNearest2x() => Ops.UpsampleNearest2x(this);
}

// In-place forms of two ops, for inference only (no gradients: nothing is recorded, and an input is overwritten), so
// that a block whose activation dies on the way does not hold a second full-size copy of it. A VAE decode at 512×512
// holds 128-256 MiB per activation; ResnetBlock2D's inference path uses these.
//   GroupNormInPlaceNoGrad: x ← [silu](group_norm(x)). The kernel reads a group's statistics first, then maps each
//     element once, so writing over the input gives the bits of GroupNorm.
//   Conv2dAddIntoNoGrad: r ← r + conv2d(x, W) + b, the convolution added into the residual's own storage as NCHW
//     Winograd writes its output tiles: the bits of Conv2d(x, W, b, residual: r). On the other kernels the sum is made
//     in a new tensor as Conv2d does.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>x ← [silu](group_norm(x)) over x (B, C, *spatial), contiguous; without gradients only. Returns x, whose
    /// old values are gone. The bits of <see cref="GroupNorm"/>.</summary>
    public static Tensor GroupNormInPlaceNoGrad(Tensor x, int groups, Tensor? weight, Tensor? bias, float eps, bool silu)
    {
        string op = silu ? "GroupNormSilu (in place)" : "GroupNorm (in place)";
        if (GradMode.IsEnabled) throw new InvalidOperationException($"{op} runs without gradients only (inside Tensor.NoGrad())");
        if (x.Rank < 2 || !x.IsContiguous)
            throw new ArgumentException($"{op} expects a contiguous (B, C, *spatial), got {ShapeUtil.Format(x.ShapeSpan)}");
        int n = x.ShapeSpan[0], c = x.ShapeSpan[1];
        if (groups < 1 || c % groups != 0)
            throw new ArgumentException($"{op}: {c} channels are not divisible into {groups} groups (input {ShapeUtil.Format(x.ShapeSpan)})");
        CheckAffine(op, "weight", weight, [c], x);
        CheckAffine(op, "bias", bias, [c], x);
        if (!(eps >= 0)) throw new ArgumentException($"{op}: eps must be non-negative, got {eps}");
        int s = n * c == 0 ? 0 : x.Count / (n * c);
        var mean = new float[2 * n * groups];                  // μ as (hi, lo) pairs and 1/σ, per (b, g): not kept
        var rstd = new float[n * groups];
        var gamma = weight?.Contiguous().Data.ToArray() ?? Filled(c, 1f);
        var beta = bias?.Contiguous().Data.ToArray() ?? Filled(c, 0f);
        if (x.Count > 0)
            fixed (float* px = x.Data, pg = gamma, pb = beta, pm = mean, pr = rstd)
            {
                if (silu) Norm.GroupNormForward<SiluActivation>(px, pg, pb, px, pm, pr, n, c, s, groups, eps);
                else Norm.GroupNormForward<IdentityActivation>(px, pg, pb, px, pm, pr, n, c, s, groups, eps);
            }
        return Graph.Record(op, x, [x], _ => { });              // profiler and memory trace only: no gradients here
    }

    /// <summary>Whether <see cref="Conv2dAddIntoNoGrad"/> adds into the residual's storage for x (B, C, H, W) and a
    /// 3×3 weight to cout channels at padding 1: no gradients, and the NCHW Winograd kernel is the one Conv2d runs.</summary>
    public static bool Conv2dAddsInPlace(Tensor x, int cout, int padding)
    {
        if (GradMode.IsEnabled || x.Rank != 4 || padding != 1) return false;
        var g = new ConvGeometry(x.Dim(1), x.Dim(2), x.Dim(3), 3, 3, 1, 1);
        return !ConvLanes.PreferForward(g, cout, x.Dim(0)) && ConvDirect.IsSupported(g) && ConvDirect.PreferForward(g) && ConvWinogradNchw.Prefer(g, cout);
    }

    /// <summary>residual + conv2d(x, weight, bias, stride 1, padding) without gradients. Where
    /// <see cref="Conv2dAddsInPlace"/>, the sum is written into <paramref name="residual"/>'s storage and residual is
    /// returned (its old values gone); elsewhere a new tensor as <see cref="Conv2d(Tensor, Tensor, Tensor?, int, int, Tensor?)"/>
    /// makes it. The same bits either way.</summary>
    public static Tensor Conv2dAddIntoNoGrad(Tensor x, Tensor weight, Tensor? bias, int padding, Tensor residual)
    {
        if (GradMode.IsEnabled) throw new InvalidOperationException("Conv2dAddInto runs without gradients only (inside Tensor.NoGrad())");
        int cout = weight.Rank == 4 ? weight.Dim(0) : -1;
        bool inPlace = weight.Rank == 4 && weight.Dim(2) == 3 && weight.Dim(3) == 3 && x.Rank == 4 && weight.Dim(1) == x.Dim(1)
            && residual.IsContiguous && residual.ShapeSpan.SequenceEqual([x.Dim(0), cout, x.Dim(2), x.Dim(3)])
            && !ReferenceEquals(residual.Storage, x.Storage) && Conv2dAddsInPlace(x, cout, padding);
        if (!inPlace) return Conv2d(x, weight, bias, 1, padding, residual);
        CheckBias("Conv2dAddInto", bias, cout);
        x = x.Contiguous(); weight = weight.Contiguous();
        var g = new ConvGeometry(x.Dim(1), x.Dim(2), x.Dim(3), 3, 3, 1, 1);
        if (residual.Count > 0)
            fixed (float* px = x.Data, pw = weight.Data, pr = residual.Data, pb = bias is null ? default : bias.Contiguous().Data)
                ConvWinogradNchw.Forward(px, x.Dim(0), g, pw, cout, pb, pr, accumulate: true);
        return Graph.Record($"Conv2d 3x3 {g.C}->{cout} {g.H}x{g.W} winograd (added in place)", residual, [x, weight, residual], _ => { });
    }
}

// In-place forms of two ops, for inference only (no gradients: nothing is recorded, and an input is overwritten), so
// that a block whose activation dies on the way does not hold a second full-size copy of it. A VAE decode at 512×512
// holds 128-256 MiB per activation; ResnetBlock2D's inference path uses these.
//   GroupNormInPlaceNoGrad: x ← [silu](group_norm(x)). The kernel reads a group's statistics first, then maps each
//     element once, so writing over the input gives the bits of GroupNorm.
//   Conv2dAddIntoNoGrad: r ← r + conv2d(x, W) + b, the convolution added into the residual's own storage as NCHW
//     Winograd writes its output tiles: the bits of Conv2d(x, W, b, residual: r). On the other kernels the sum is made
//     in a new tensor as Conv2d does.
//   GroupNormSiluConv2dNoGrad: conv2d(silu(group_norm(x))) [+ r], the norm applied to the input as NCHW Winograd
//     reads its tiles (the statistics first, as GroupNorm computes them): the normalised image is never made.
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

    /// <summary>Whether <see cref="GroupNormSiluConv2dNoGrad"/> fuses the norm into the convolution for x (B, C, H, W)
    /// and a 3×3 weight to cout channels at padding 1 (see <see cref="Conv2dAddsInPlace"/>).</summary>
    public static bool NormConvFuses(Tensor x, int cout, int padding) => Conv2dAddsInPlace(x, cout, padding);

    /// <summary>conv2d(silu(group_norm(x)), weight, bias, padding 1) without gradients, plus residual when given: into
    /// residual's storage with <paramref name="intoResidual"/> (residual returned, its old values gone), else in a new
    /// tensor. The norm is applied as the tiles are read. The bits of GroupNormSilu then Conv2d(…, residual). Only where
    /// <see cref="NormConvFuses"/>.</summary>
    public static Tensor GroupNormSiluConv2dNoGrad(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Tensor weight, Tensor? bias,
        Tensor? residual = null, bool intoResidual = false)
    {
        const string op = "GroupNormSiluConv2d";
        if (GradMode.IsEnabled) throw new InvalidOperationException($"{op} runs without gradients only (inside Tensor.NoGrad())");
        int cout = weight.Rank == 4 ? weight.Dim(0) : -1;
        if (x.Rank != 4 || !weight.ShapeSpan.SequenceEqual([cout, x.Dim(1), 3, 3]))
            throw new ArgumentException($"{op} expects input (B, C, H, W) and weight (Cout, C, 3, 3), got {ShapeUtil.Format(x.ShapeSpan)} and {ShapeUtil.Format(weight.ShapeSpan)}");
        int n = x.Dim(0), c = x.Dim(1), s = x.Dim(2) * x.Dim(3);
        if (groups < 1 || c % groups != 0)
            throw new ArgumentException($"{op}: {c} channels are not divisible into {groups} groups (input {ShapeUtil.Format(x.ShapeSpan)})");
        CheckAffine(op, "weight", gamma, [c], x);
        CheckAffine(op, "bias", beta, [c], x);
        CheckBias(op, bias, cout);
        int[] outShape = [n, cout, x.Dim(2), x.Dim(3)];
        if (residual is not null && !residual.ShapeSpan.SequenceEqual(outShape))
            throw new ArgumentException($"{op}: the residual must have the output's shape {ShapeUtil.Format(outShape)}, got {ShapeUtil.Format(residual.ShapeSpan)}");
        if (!NormConvFuses(x, cout, 1))
            throw new InvalidOperationException($"{op}: input {ShapeUtil.Format(x.ShapeSpan)} to {cout} channels does not run fused (not on NCHW Winograd)");
        x = x.Contiguous(); weight = weight.Contiguous();
        Tensor y;
        if (residual is null) y = Tensor.Uninitialized(outShape);
        else if (intoResidual && residual.IsContiguous && !residual.SharesStorage(x)) y = residual;
        else
        {
            y = Tensor.Uninitialized(outShape);
            Binary.CopyInto(residual.Contiguous().Data, y.Data);
        }
        var mean = new float[2 * n * groups];
        var rstd = new float[n * groups];
        var scale = new float[n * c];
        var g0 = gamma?.Contiguous().Data.ToArray() ?? Filled(c, 1f);
        var b0 = beta?.Contiguous().Data.ToArray() ?? Filled(c, 0f);
        var g = new ConvGeometry(c, x.Dim(2), x.Dim(3), 3, 3, 1, 1);
        if (y.Count > 0)
            fixed (float* px = x.Data, pw = weight.Data, py = y.Data, pb = bias is null ? default : bias.Contiguous().Data)
            fixed (float* pm = mean, pr = rstd, ps = scale, pg = g0, pbeta = b0)
            {
                Norm.GroupNormStatistics(px, pm, pr, n, c, s, groups, eps);
                for (int b = 0; b < n; b++)
                    for (int ch = 0; ch < c; ch++)
                        ps[b * c + ch] = pr[b * groups + ch / (c / groups)] * pg[ch];   // rstd·γ in float, as GroupNorm
                var norm = new ConvWinogradNchw.InputNorm(pm, ps, pbeta, groups);
                ConvWinogradNchw.Forward(px, n, g, pw, cout, pb, py, norm, accumulate: residual is not null);
            }
        return Graph.Record($"GroupNormSiluConv2d 3x3 {c}->{cout} {g.H}x{g.W} winograd (fused, no grad)", y, [x, weight], _ => { });
    }
}

// diffusers' Downsample2D and Upsample2D (models/downsampling.py, upsampling.py) with use_conv: a stride-2 3×3 conv
// (padding 0 pads right and bottom by one first, as the VAE encoder does), and nearest-neighbour ×2 (or to a given
// size) followed by a 3×3 conv. Both keep the conv under the name "conv", as diffusers' state dicts do.
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' Downsample2D with use_conv: a stride-2 3×3 conv named "conv" (padding 0 first pads right and
/// bottom by one, as the VAE encoder does).</summary>
public sealed class Downsample2D : Module
{
    readonly Conv2d _conv;
    readonly int _padding;

    /// <summary>A downsampler from <paramref name="channels"/> to <paramref name="outChannels"/> with conv padding
    /// <paramref name="padding"/> (≥ 0); weights drawn from <paramref name="rng"/>.</summary>
    public Downsample2D(int channels, int outChannels, int padding, Rng rng)
    {
        if (padding < 0) throw new ArgumentException($"Downsample2D: padding must be ≥ 0, got {padding}");
        _padding = padding;
        _conv = Register("conv", new Conv2d(channels, outChannels, 3, rng, stride: 2, padding: padding));
    }

    /// <summary>x: (B, C, H, W) → (B, Cout, ⌊(H + 2p − 3)/2⌋ + 1, …); with p = 0, H and W are first padded by one at the end.</summary>
    public Tensor Forward(Tensor x)
    {
        if (_padding == 0)
        {
            int b = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
            x = Tensor.Concat([x, Tensor.Zeros(b, c, h, 1)], 3);             // (B, C, H, W + 1)
            x = Tensor.Concat([x, Tensor.Zeros(b, c, 1, w + 1)], 2);         // (B, C, H + 1, W + 1)
        }
        return _conv.Forward(x);
    }
}

/// <summary>diffusers' Upsample2D with use_conv: nearest-neighbour ×2 (or to a given size) followed by a 3×3 conv named
/// "conv".</summary>
public sealed class Upsample2D : Module
{
    readonly Conv2d _conv;

    /// <summary>An upsampler from <paramref name="channels"/> to <paramref name="outChannels"/>; weights drawn from
    /// <paramref name="rng"/>.</summary>
    public Upsample2D(int channels, int outChannels, Rng rng)
        => _conv = Register("conv", new Conv2d(channels, outChannels, 3, rng, padding: 1));

    /// <summary>x: (B, C, H, W) → (B, Cout, 2H, 2W), or (B, Cout, size[0], size[1]) when a size is given (nearest).</summary>
    public Tensor Forward(Tensor x, int[]? size = null)
    {
        if (size is null || (size[0] == 2 * x.Dim(2) && size[1] == 2 * x.Dim(3)))
        {
            if (Autograd.Ops.UpsampleConvFuses(x, _conv.OutChannels))
                return Autograd.Ops.UpsampleConv2dNoGrad(x, _conv.Weight, _conv.Bias);   // the upsampled tensor never made
            return _conv.Forward(x.UpsampleNearest2x());
        }
        return _conv.Forward(NearestResize(x, size[0], size[1]));
    }

    /// <summary>F.interpolate(x, size, mode="nearest"): output row i reads input row ⌊i·H/Ho⌋ (likewise columns).</summary>
    public static Tensor NearestResize(Tensor x, int ho, int wo)
    {
        int h = x.Dim(2), w = x.Dim(3);
        float sh = (float)h / ho, sw = (float)w / wo;                         // float32 scales, as ATen computes them
        var rows = Enumerable.Range(0, ho).Select(i => Math.Min(h - 1, (int)MathF.Floor(i * sh))).ToArray();
        var cols = Enumerable.Range(0, wo).Select(j => Math.Min(w - 1, (int)MathF.Floor(j * sw))).ToArray();
        return x.IndexSelect(2, rows).IndexSelect(3, cols);                  // (B, C, Ho, Wo)
    }
}

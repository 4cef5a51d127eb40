// The UNet's blocks, as improved-diffusion's unet.py defines them: ResBlock (GroupNorm → SiLU → conv, the
// timestep embedding added or applied as scale-and-shift, GroupNorm → SiLU → dropout → zero-initialised conv,
// plus a skip), AttentionBlock (multi-head self-attention over the pixels, QKVAttention's scaling), and the
// stride-2 Downsample / nearest-×2 Upsample. Without gradients (sampling) a ResBlock runs fused on the lane kernels
// (Autograd/Ops.ResBlock.cs), the decoder's concatenated input read in place, and Upsample's conv reads the
// un-upsampled input.
using DiffuSharp.Autograd;

namespace DiffuSharp.NN;

/// <summary>improved-diffusion's ResBlock: GroupNorm → SiLU → 3×3 conv, the timestep embedding added (or applied as
/// scale and shift), GroupNorm → SiLU → dropout → zero-initialised 3×3 conv, plus a skip connection (identity, or a
/// conv where the channel count changes).</summary>
public sealed class ResBlock : Module, IEmbedLayer
{
    readonly GroupNorm _inNorm, _outNorm;
    readonly Conv2d _inConv, _outConv;
    readonly Linear _embProj;
    readonly Conv2d? _skip;                      // only when channel counts differ
    readonly bool _scaleShift;
    readonly float _dropout;
    readonly int _outChannels;

    /// <summary>A block from <paramref name="channels"/> to <paramref name="outChannels"/> channels taking an embedding
    /// of <paramref name="embChannels"/>; <paramref name="useScaleShiftNorm"/> applies the embedding as out_norm(h)·(1
    /// + scale) + shift, <paramref name="useConvSkip"/> makes a changed channel count's skip a 3×3 conv instead of 1×1.
    /// Weights are drawn from <paramref name="rng"/>.</summary>
    public ResBlock(int channels, int embChannels, float dropout, int outChannels, bool useScaleShiftNorm, bool useConvSkip, Rng rng)
    {
        (_scaleShift, _dropout, _outChannels) = (useScaleShiftNorm, dropout, outChannels);
        _inNorm = Register("in_layers.0", new GroupNorm(32, channels));
        _inConv = Register("in_layers.2", new Conv2d(channels, outChannels, 3, rng, padding: 1));
        _embProj = Register("emb_layers.1", new Linear(embChannels, useScaleShiftNorm ? 2 * outChannels : outChannels, rng));
        _outNorm = Register("out_layers.0", new GroupNorm(32, outChannels));
        _outConv = Register("out_layers.3", Init.Zero(new Conv2d(outChannels, outChannels, 3, rng, padding: 1)));
        if (outChannels != channels)
            _skip = Register("skip_connection", useConvSkip ? new Conv2d(channels, outChannels, 3, rng, padding: 1) : new Conv2d(channels, outChannels, 1, rng));
    }

    /// <summary>Forward(cat(a, b) along the channels): the UNet's decoder input, its skip connection beside it. Without
    /// gradients and on the fused path the concatenation is never made (the 1×1 skip convolution and the fused block
    /// read both parts in place); otherwise it is concatenated here.</summary>
    public Tensor Forward(Tensor a, Tensor b, Tensor emb, ForwardContext ctx)
    {
        if (MayFuse(ctx) && _skip is not null && _skip.Weight.Dim(2) == 1 && a.Rank == 4 && b.Rank == 4
            && Ops.ResBlockFuses(a.Dim(0), a.Dim(1) + b.Dim(1), a.Dim(2), a.Dim(3), _outChannels))
            return Fused(a, b, emb, Ops.PointwiseConvPair(a, b, _skip.Weight, _skip.Bias));
        return Forward(Tensor.Concat([a, b], 1), emb, ctx);
    }

    /// <summary>Without scale-shift norm, and without dropout in play, the block can run fused when no gradient is recorded.</summary>
    bool MayFuse(ForwardContext ctx) => !_scaleShift && !(ctx.Training && _dropout > 0);

    /// <summary>The whole block on the lane kernels (Autograd/Ops.ResBlock.cs), input cat(x, x2) (x2 may be null).</summary>
    Tensor Fused(Tensor x, Tensor? x2, Tensor emb, Tensor residual) =>
        Ops.ResBlockNoGrad(x, x2, _inNorm.Groups, _inNorm.Eps, _inNorm.Weight, _inNorm.Bias, _inConv.Weight, _inConv.Bias!,
            _embProj.Forward(emb.Silu()), _outNorm.Weight, _outNorm.Bias, _outConv.Weight, _outConv.Bias!, residual);

    /// <summary>x: (B, C, H, W), emb: (B, E) → (B, Cout, H, W); dropout applies only when <paramref name="ctx"/> is
    /// training. Without gradients and without scale-shift norm the block runs fused.</summary>
    public Tensor Forward(Tensor x, Tensor emb, ForwardContext ctx)       // x: (B, C, H, W), emb: (B, E)
    {
        if (MayFuse(ctx) && Ops.ResBlockFuses(x, _outChannels)) return Fused(x, null, emb, _skip?.Forward(x) ?? x);
        var h = _inConv.Forward(_inNorm.ForwardSilu(x));                  // (B, Cout, H, W)
        var e = _embProj.Forward(emb.Silu());                              // (B, Cout) or (B, 2·Cout)
        int b = x.Dim(0);
        if (_scaleShift)
        {
            var parts = e.Chunk(2, 1);
            var scale = parts[0].Reshape(b, _outChannels, 1, 1);
            var shift = parts[1].Reshape(b, _outChannels, 1, 1);
            h = (_outNorm.Forward(h) * (scale + 1.0) + shift).Silu();
        }
        else
        {
            h = _outNorm.ForwardSilu(h + e.Reshape(b, _outChannels, 1, 1)); // broadcast over H, W
        }
        if (ctx.Training && _dropout > 0) h = h.Dropout(_dropout, ctx.Rng!);
        return _outConv.Forward(h, residual: _skip?.Forward(x) ?? x);     // skip(x) + out_layers(h)
    }
}

/// <summary>improved-diffusion's AttentionBlock: multi-head self-attention over the H·W positions (GroupNorm, a 1×1 qkv
/// projection, QKVAttention's scaling, a zero-initialised output projection) added to the input.</summary>
public sealed class AttentionBlock : Module, IEmbedLayer
{
    readonly GroupNorm _norm;
    readonly Conv1x1 _qkv, _projOut;
    readonly int _heads, _channels;

    /// <summary>Self-attention over <paramref name="channels"/> channels split into <paramref name="numHeads"/> heads
    /// (channels must divide evenly); weights drawn from <paramref name="rng"/>.</summary>
    public AttentionBlock(int channels, int numHeads, Rng rng)
    {
        if (channels % numHeads != 0) throw new ArgumentException($"AttentionBlock: {channels} channels do not split into {numHeads} heads");
        (_heads, _channels) = (numHeads, channels);
        _norm = Register("norm", new GroupNorm(32, channels));
        _qkv = Register("qkv", new Conv1x1(channels, 3 * channels, rng));
        _projOut = Register("proj_out", Init.Zero(new Conv1x1(channels, channels, rng)));
    }

    /// <summary>x + attention(x) for x: (B, C, H, W); the embedding and context are ignored.</summary>
    public Tensor Forward(Tensor x, Tensor emb, ForwardContext ctx)
    {
        int b = x.Dim(0), c = x.Dim(1), hh = x.Dim(2), ww = x.Dim(3), t = hh * ww;
        var flat = x.Reshape(b, c, t);                                     // (B, C, T)
        var qkv = _qkv.Forward(_norm.Forward(flat));                       // (B, 3C, T): q, k, v stacked per head
        return _projOut.Forward(Tensor.QkvAttention(qkv, _heads), residual: flat).Reshape(b, c, hh, ww);   // x + proj_out(h)
    }
}

/// <summary>improved-diffusion's Downsample: halves H and W with a stride-2 3×3 conv, or with 2×2 average
/// pooling.</summary>
public sealed class Downsample : Module, IEmbedLayer
{
    readonly Conv2d? _op;

    /// <summary>A downsampler of <paramref name="channels"/> channels; <paramref name="useConv"/> chooses the stride-2
    /// conv (named "op") over average pooling.</summary>
    public Downsample(int channels, bool useConv, Rng rng)
    {
        if (useConv) _op = Register("op", new Conv2d(channels, channels, 3, rng, stride: 2, padding: 1));
    }

    /// <summary>(B, C, H, W) → (B, C, H/2, W/2); the embedding and context are ignored.</summary>
    public Tensor Forward(Tensor x, Tensor emb, ForwardContext ctx) => _op?.Forward(x) ?? x.AvgPool2x2();   // (B, C, H/2, W/2)
}

/// <summary>improved-diffusion's Upsample: nearest-neighbour ×2, optionally followed by a 3×3 conv.</summary>
public sealed class Upsample : Module, IEmbedLayer
{
    readonly Conv2d? _conv;

    /// <summary>An upsampler of <paramref name="channels"/> channels; <paramref name="useConv"/> adds the 3×3 conv
    /// (named "conv") after the upsampling.</summary>
    public Upsample(int channels, bool useConv, Rng rng)
    {
        if (useConv) _conv = Register("conv", new Conv2d(channels, channels, 3, rng, padding: 1));
    }

    /// <summary>(B, C, H, W) → (B, C, 2H, 2W); the embedding and context are ignored. Without gradients the conv reads
    /// the input directly, so the upsampled tensor is never made.</summary>
    public Tensor Forward(Tensor x, Tensor emb, ForwardContext ctx)
    {
        if (_conv is not null && Ops.UpsampleConvFuses(x, _conv.OutChannels))
            return Ops.UpsampleConv2dNoGrad(x, _conv.Weight, _conv.Bias);   // the upsampled tensor never made
        var h = x.UpsampleNearest2x();                                     // (B, C, 2H, 2W)
        return _conv?.Forward(h) ?? h;
    }
}

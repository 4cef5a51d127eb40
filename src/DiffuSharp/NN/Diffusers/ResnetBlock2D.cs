// diffusers' ResnetBlock2D (models/resnet.py), time_embedding_norm "default" or "scale_shift": GroupNorm → act →
// conv3×3, the projected time embedding added (or applied as scale and shift after the second norm), GroupNorm →
// act → dropout → conv3×3, plus the input (through a 1×1 conv_shortcut when the channel count changes), divided by
// output_scale_factor. Without a time embedding (temb_channels None) it is the VAE's block.
using DiffuSharp.Autograd;

namespace DiffuSharp.NN.Diffusers;

/// <summary>What every ResnetBlock2D of a model shares (diffusers passes these to each block one by one).</summary>
public sealed record ResnetSettings(
    int Groups,
    float Eps,
    Activation Act = Activation.Silu,
    float Dropout = 0f,
    TimeScaleShift TimeScaleShift = TimeScaleShift.Default,
    double OutputScaleFactor = 1.0,                              // (x + h) / factor
    bool SkipTimeAct = false);                                   // time_emb_proj on temb itself, not act(temb)

/// <summary>diffusers' ResnetBlock2D: GroupNorm → act → 3×3 conv, the projected time embedding added (or applied as
/// scale and shift), GroupNorm → act → dropout → 3×3 conv, plus the input (through a 1×1 conv_shortcut when the channel
/// count changes), divided by output_scale_factor. Without a time embedding it is the VAE's block.</summary>
public sealed class ResnetBlock2D : Module
{
    readonly GroupNorm _norm1, _norm2;
    readonly Conv2d _conv1, _conv2;
    readonly Linear? _timeEmbProj;
    readonly Conv2d? _convShortcut;                             // 1×1, when in ≠ out
    readonly ResnetSettings _s;
    readonly int _outChannels;

    /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/>;
    /// <paramref name="tembChannels"/> is the time embedding's width, or null for a block without one (the VAE's). Weights drawn
    /// from <paramref name="rng"/>.</summary>
    public ResnetBlock2D(int inChannels, int outChannels, int? tembChannels, ResnetSettings settings, Rng rng)
    {
        (_s, _outChannels) = (settings, outChannels);
        _norm1 = Register("norm1", new GroupNorm(settings.Groups, inChannels, settings.Eps));
        _conv1 = Register("conv1", new Conv2d(inChannels, outChannels, 3, rng, padding: 1));
        if (tembChannels is int t)
            _timeEmbProj = Register("time_emb_proj", new Linear(t, settings.TimeScaleShift == TimeScaleShift.ScaleShift ? 2 * outChannels : outChannels, rng));
        _norm2 = Register("norm2", new GroupNorm(settings.Groups, outChannels, settings.Eps));
        _conv2 = Register("conv2", new Conv2d(outChannels, outChannels, 3, rng, padding: 1));
        if (inChannels != outChannels) _convShortcut = Register("conv_shortcut", new Conv2d(inChannels, outChannels, 1, rng));
    }

    /// <summary>x: (B, Cin, H, W), temb: (B, E) or null → (B, Cout, H, W). With <paramref name="inputDies"/> the caller
    /// reads x no more after this call (it may release it), so without gradients the block may overwrite and release
    /// it: the result may then share x's storage.</summary>
    public Tensor Forward(Tensor x, Tensor? temb, ForwardContext ctx, bool inputDies = false)
    {
        if ((temb is null) != (_timeEmbProj is null))
            throw new ArgumentException(temb is null ? "ResnetBlock2D: this block needs a time embedding" : "ResnetBlock2D: this block takes no time embedding");
        if (!GradMode.IsEnabled && temb is null && _s.Act == Activation.Silu && _s.OutputScaleFactor == 1.0 && !(ctx.Training && _s.Dropout > 0))
            return ForwardLean(x, inputDies && x.OwnsStorage);
        var h = _conv1.Forward(NormAct(_norm1, x));                        // (B, Cout, H, W)
        int b = x.Dim(0);
        Tensor? e = null;
        if (_timeEmbProj is not null)
            e = _timeEmbProj.Forward(_s.SkipTimeAct ? temb! : _s.Act.Apply(temb!));   // (B, Cout) or (B, 2·Cout)
        if (_s.TimeScaleShift == TimeScaleShift.ScaleShift && e is not null)
        {
            var parts = e.Chunk(2, 1);
            var scale = parts[0].Reshape(b, _outChannels, 1, 1);
            var shift = parts[1].Reshape(b, _outChannels, 1, 1);
            h = _s.Act.Apply(_norm2.Forward(h) * (scale + 1.0) + shift);
        }
        else
        {
            if (e is not null) h += e.Reshape(b, _outChannels, 1, 1);          // broadcast over H, W
            h = NormAct(_norm2, h);
        }
        if (ctx.Training && _s.Dropout > 0) h = h.Dropout(_s.Dropout, ctx.Rng ?? throw new ArgumentException("ResnetBlock2D: dropout in training needs an Rng"));
        var residual = _convShortcut?.Forward(x) ?? x;
        if (_s.OutputScaleFactor == 1.0) return _conv2.Forward(h, residual);  // residual + conv2(h)
        return (residual + _conv2.Forward(h)) / _s.OutputScaleFactor;
    }

    /// <summary>The forward without gradients or time embedding, each temporary handed back as soon as it is consumed
    /// (inside a TensorScope): x, conv1's output and the shortcut's at most, instead of all six activations until the
    /// call's scope ends. Where NCHW Winograd runs, each GroupNorm + SiLU is applied as the convolution reads its input
    /// (the normalised image never made), elsewhere in place or in one temporary. A 1×1 shortcut is computed first, so a
    /// dying x can be released after conv1; conv2 then adds into the shortcut's output (or, without a shortcut, into a
    /// dying x). The same bits as the graph path.</summary>
    Tensor ForwardLean(Tensor x, bool inputDies)
    {
        var residual = _convShortcut?.Forward(x) ?? x;                        // (B, Cout, H, W), before x is overwritten
        var c = NormSiluConv(x, _norm1, _conv1, null, overwrite: inputDies && _convShortcut is not null);   // (B, Cout, H, W)
        if (inputDies && _convShortcut is not null) x.ReleaseScratch();
        bool ownsResidual = _convShortcut is not null || inputDies;          // its storage may take conv2's output
        var y = NormSiluConv(c, _norm2, _conv2, residual, overwrite: true, intoResidual: ownsResidual);   // residual + conv2(silu(norm2(c)))
        if (ownsResidual && !ReferenceEquals(y, residual)) residual.ReleaseScratch();
        c.ReleaseScratch();
        return y;
    }

    /// <summary>conv(silu(norm(x))) [+ residual, into its storage where the kernel can with intoResidual]; with overwrite
    /// x may be normalised in place (it dies).</summary>
    static Tensor NormSiluConv(Tensor x, GroupNorm norm, Conv2d conv, Tensor? residual, bool overwrite, bool intoResidual = false)
    {
        if (conv.Stride == 1 && Ops.NormConvFuses(x, conv.OutChannels, conv.Padding))
            return Ops.GroupNormSiluConv2dNoGrad(x, norm.Groups, norm.Weight, norm.Bias, norm.Eps, conv.Weight, conv.Bias, residual, intoResidual);
        var h = overwrite ? Ops.GroupNormInPlaceNoGrad(x, norm.Groups, norm.Weight, norm.Bias, norm.Eps, silu: true) : norm.ForwardSilu(x);
        var y = residual is null ? conv.Forward(h)
            : intoResidual && conv.Stride == 1 ? Ops.Conv2dAddIntoNoGrad(h, conv.Weight, conv.Bias, conv.Padding, residual)
            : conv.Forward(h, residual);
        if (!ReferenceEquals(h, x)) h.ReleaseScratch();
        return y;
    }

    Tensor NormAct(GroupNorm norm, Tensor x) => _s.Act == Activation.Silu ? norm.ForwardSilu(x) : _s.Act.Apply(norm.Forward(x));
}

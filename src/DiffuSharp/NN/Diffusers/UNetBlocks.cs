// diffusers' UNet blocks (models/unets/unet_2d_blocks.py), as one down block, one up block and one mid block type
// whose parameter names are diffusers' (resnets.i, attentions.i, downsamplers.0, upsamplers.0):
//   DownBlock2D / DownEncoderBlock2D = resnets (+ downsampler); AttnDownBlock2D adds the spatial attention after each
//   resnet, CrossAttnDownBlock2D a Transformer2DModel. Every resnet output (and the downsampled one) is a skip.
//   UpBlock2D / AttnUpBlock2D / CrossAttnUpBlock2D take one skip per resnet (concatenated on the channels, last
//   pushed first), UpDecoderBlock2D none; then the upsampler.
//   UNetMidBlock2D / UNetMidBlock2DCrossAttn = resnet, then (attention, resnet) pairs.
// The block type named in config.json picks the factory; the forward is the same straight line for all of them.
//
// Memory: without gradients inside a TensorScope, every resnet and every attention runs in a scope of its own that
// keeps only its output, so a block at 512×512 (the VAE decoder's last) holds one layer's temporaries at a time.
using DiffuSharp.Autograd;

namespace DiffuSharp.NN.Diffusers;

/// <summary>What follows each resnet of a block: nothing, a spatial attention or a Transformer2DModel.</summary>
public abstract record BlockAttention;

/// <summary>A Transformer2DModel per resnet (CrossAttn* blocks): heads of channels/heads each, transformerLayers[i]
/// BasicTransformerBlocks after resnet i.</summary>
public sealed record CrossAttention(int Heads, int[] TransformerLayers, int? CrossAttentionDim, bool UseLinearProjection, bool OnlyCrossAttention) : BlockAttention;

/// <summary>The spatial attention of Attn* blocks and the mid blocks: heads = channels / HeadDim; a GroupNorm of
/// NormGroups first (none when null).</summary>
public sealed record SpatialAttention(int HeadDim, int? NormGroups) : BlockAttention;

internal static class BlockParts
{
    public static Module? Make(BlockAttention? spec, int channels, int layer, ResnetSettings s, Rng rng) => spec switch
    {
        null => null,
        CrossAttention c => new Transformer2DModel(c.Heads, channels / c.Heads, channels, c.TransformerLayers[layer], c.CrossAttentionDim,
            s.Groups, c.UseLinearProjection, c.OnlyCrossAttention, rng),
        SpatialAttention a => Attention.Spatial(channels, channels / a.HeadDim, a.HeadDim, a.NormGroups, s.Eps, s.OutputScaleFactor, rng),
        _ => throw new ArgumentException($"unknown block attention {spec}"),
    };

    public static Tensor Run(Module attention, Tensor h, Tensor? context) => Layer(() => attention switch
    {
        Transformer2DModel t => t.Forward(h, context),
        Attention a => a.ForwardSpatial(h),
        _ => throw new InvalidOperationException($"unexpected attention module {attention.GetType().Name}"),
    });

    /// <summary>Without gradients, hands the pooled storage of an activation this block made back at once, when the
    /// next layer has consumed it and nothing else refers to it (a VAE decode at 512×512 otherwise holds every layer's
    /// output until the call's scope ends). Any later use of it throws rather than read recycled memory.</summary>
    public static void Drop(Tensor made)
    {
        if (!GradMode.IsEnabled) made.ReleaseScratch();
    }

    /// <summary><see cref="Drop(Tensor)"/>, unless the layer that consumed <paramref name="made"/> wrote its
    /// <paramref name="result"/> into made's storage (a resnet adding into its dying input).</summary>
    public static void Drop(Tensor made, Tensor result)
    {
        if (!made.SharesStorage(result)) Drop(made);
    }

    /// <summary>Runs one layer; without gradients inside a TensorScope, in a scope of its own that keeps only the output.</summary>
    public static Tensor Layer(Func<Tensor> layer)
    {
        if (GradMode.IsEnabled || TensorScope.Current is null) return layer();
        using var scope = TensorScope.Begin();
        return scope.Keep(layer());
    }
}

/// <summary>A diffusers down block (DownBlock2D, CrossAttnDownBlock2D, AttnDownBlock2D or the VAE's
/// DownEncoderBlock2D): resnets, each optionally followed by attention, then an optional stride-2 downsampler; every
/// intermediate output is appended to the skips.</summary>
public sealed class UNetDownBlock : Module
{
    readonly List<ResnetBlock2D> _resnets = [];
    readonly List<Module> _attentions = [];
    readonly Downsample2D? _downsampler;

    /// <summary>A down block: <paramref name="layers"/> resnets (in → out, then out → out), each followed by the given
    /// attention, then a stride-2 conv when <paramref name="addDownsample"/>.</summary>
    public UNetDownBlock(int inChannels, int outChannels, int layers, int? tembChannels, ResnetSettings s, BlockAttention? attention,
        bool addDownsample, int downsamplePadding, Rng rng)
    {
        for (int i = 0; i < layers; i++)
        {
            _resnets.Add(Register($"resnets.{i}", new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels, s, rng)));
            if (BlockParts.Make(attention, outChannels, i, s, rng) is { } a) _attentions.Add(Register($"attentions.{i}", a));
        }
        if (addDownsample) _downsampler = Register("downsamplers.0", new Downsample2D(outChannels, outChannels, downsamplePadding, rng));
    }

    /// <summary>Number of skips this block adds.</summary>
    public int SkipCount => _resnets.Count + (_downsampler is null ? 0 : 1);

    /// <summary>h: (B, Cin, H, W) → (B, Cout, H', W'); every intermediate output is appended to skips.</summary>
    public Tensor Forward(Tensor h, Tensor? temb, Tensor? context, ForwardContext ctx, List<Tensor>? skips = null)
    {
        for (int i = 0; i < _resnets.Count; i++)
        {
            var (resnet, input) = (_resnets[i], h);
            h = BlockParts.Layer(() => resnet.Forward(input, temb, ctx));
            if (_attentions.Count > 0) h = BlockParts.Run(_attentions[i], h, context);
            skips?.Add(h);
        }
        if (_downsampler is not null)
        {
            var input = h;
            h = BlockParts.Layer(() => _downsampler.Forward(input));           // (B, Cout, H/2, W/2)
            skips?.Add(h);
        }
        return h;
    }
}

/// <summary>A diffusers up block (UpBlock2D, CrossAttnUpBlock2D, AttnUpBlock2D or the VAE's UpDecoderBlock2D): resnets
/// taking the skips in reverse (not in the VAE), each optionally followed by attention, then an optional ×2
/// upsampler.</summary>
public sealed class UNetUpBlock : Module
{
    readonly List<ResnetBlock2D> _resnets = [];
    readonly List<Module> _attentions = [];
    readonly Upsample2D? _upsampler;
    readonly bool _takesSkips;

    /// <summary>An up block of <paramref name="layers"/> resnets. With <paramref name="prevOutChannels"/> (UNet up blocks)
    /// resnet i takes cat(h, skip): (i == 0 ? prevOut : out) + (i == layers − 1 ? in : out) channels; without it
    /// (the VAE decoder) resnet i takes i == 0 ? in : out.</summary>
    public UNetUpBlock(int inChannels, int? prevOutChannels, int outChannels, int layers, int? tembChannels, ResnetSettings s,
        BlockAttention? attention, bool addUpsample, Rng rng)
    {
        _takesSkips = prevOutChannels is not null;
        for (int i = 0; i < layers; i++)
        {
            int cin = prevOutChannels is int prev
                ? (i == 0 ? prev : outChannels) + (i == layers - 1 ? inChannels : outChannels)
                : (i == 0 ? inChannels : outChannels);
            _resnets.Add(Register($"resnets.{i}", new ResnetBlock2D(cin, outChannels, tembChannels, s, rng)));
            if (BlockParts.Make(attention, outChannels, i, s, rng) is { } a) _attentions.Add(Register($"attentions.{i}", a));
        }
        if (addUpsample) _upsampler = Register("upsamplers.0", new Upsample2D(outChannels, outChannels, rng));
    }

    /// <summary>True when the block ends with an upsampler (every level but the last).</summary>
    public bool HasUpsampler => _upsampler is not null;

    /// <summary>Number of skips this block consumes.</summary>
    public int SkipCount => _takesSkips ? _resnets.Count : 0;

    /// <summary>h: (B, C, H, W) → (B, Cout, 2H, 2W) (or upsampleSize); takes its skips from the end of the list. With
    /// <paramref name="inputDies"/> the caller reads h no more (see <see cref="ResnetBlock2D.Forward"/>): it is released
    /// here once consumed, unless the result took over its storage (check with <see cref="BlockParts.Drop(Tensor, Tensor)"/>).</summary>
    public Tensor Forward(Tensor h, List<Tensor>? skips, Tensor? temb, Tensor? context, ForwardContext ctx, int[]? upsampleSize = null,
        bool inputDies = false)
    {
        for (int i = 0; i < _resnets.Count; i++)
        {
            Tensor? skip = null;
            if (_takesSkips)
            {
                skip = skips![^1];
                skips.RemoveAt(skips.Count - 1);
            }
            var (resnet, input) = (_resnets[i], h);
            bool dies = skip is not null || i > 0 || inputDies;           // the concatenation, or made here by the previous layer
            h = BlockParts.Layer(() => resnet.Forward(skip is null ? input : Tensor.Concat([input, skip], 1), temb, ctx, dies));   // (B, C + C_skip, H, W) in
            if (i > 0 || inputDies) BlockParts.Drop(input, h);
            if (_attentions.Count > 0)
            {
                var made = h;
                h = BlockParts.Run(_attentions[i], h, context);
                BlockParts.Drop(made);
            }
        }
        if (_upsampler is null) return h;
        var last = h;
        var up = BlockParts.Layer(() => _upsampler.Forward(last, upsampleSize));
        BlockParts.Drop(last);
        return up;
    }
}

/// <summary>A diffusers mid block (UNetMidBlock2D or UNetMidBlock2DCrossAttn): resnet, then attention and resnet
/// pairs.</summary>
public sealed class UNetMidBlock : Module
{
    readonly List<ResnetBlock2D> _resnets = [];
    readonly List<Module> _attentions = [];

    /// <summary>resnets.0, then <paramref name="layers"/> × (attentions.i when given, resnets.i+1), all channels → channels.</summary>
    public UNetMidBlock(int channels, int? tembChannels, ResnetSettings s, BlockAttention? attention, int layers, Rng rng)
    {
        _resnets.Add(Register("resnets.0", new ResnetBlock2D(channels, channels, tembChannels, s, rng)));
        for (int i = 0; i < layers; i++)
        {
            if (BlockParts.Make(attention, channels, i, s, rng) is { } a) _attentions.Add(Register($"attentions.{i}", a));
            _resnets.Add(Register($"resnets.{i + 1}", new ResnetBlock2D(channels, channels, tembChannels, s, rng)));
        }
    }

    /// <summary>h: (B, C, H, W) → (B, C, H, W). With <paramref name="inputDies"/> as in <see cref="UNetUpBlock.Forward"/>.</summary>
    public Tensor Forward(Tensor h, Tensor? temb, Tensor? context, ForwardContext ctx, bool inputDies = false)
    {
        var first = h;
        h = BlockParts.Layer(() => _resnets[0].Forward(first, temb, ctx, inputDies));
        if (inputDies) BlockParts.Drop(first, h);
        for (int i = 1; i < _resnets.Count; i++)
        {
            if (_attentions.Count > 0)
            {
                var made = h;
                h = BlockParts.Run(_attentions[i - 1], h, context);
                BlockParts.Drop(made);
            }
            var (resnet, input) = (_resnets[i], h);
            h = BlockParts.Layer(() => resnet.Forward(input, temb, ctx, inputDies: true));
            BlockParts.Drop(input, h);
        }
        return h;
    }
}

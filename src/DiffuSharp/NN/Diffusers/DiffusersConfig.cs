// The config.json of diffusers' UNet2DConditionModel, UNet2DModel, AutoencoderKL and ControlNetModel (diffusers
// 0.27.2, models/unets/unet_2d_condition.py, unet_2d.py, autoencoders/autoencoder_kl.py, controlnet.py), bound to
// immutable records with diffusers' defaults. Every key those constructors take is read; a value this port does
// not build (another block type, class or addition embeddings, fourier time embedding, …) is an error naming the
// key, the value and the file, and so is a key diffusers does not know. "int or per-block list" keys are expanded
// to one value per block here, so the models never see the union.
namespace DiffuSharp.NN.Diffusers;

/// <summary>Activation named by diffusers' act_fn ("silu"/"swish", "gelu", "relu").</summary>
public enum Activation
{
    /// <summary>"silu" or "swish": x·σ(x).</summary>
    Silu,
    /// <summary>"gelu": the exact erf GELU.</summary>
    Gelu,
    /// <summary>"relu": max(x, 0).</summary>
    Relu,
}

/// <summary>How a ResnetBlock2D applies the time embedding (resnet_time_scale_shift).</summary>
public enum TimeScaleShift
{
    /// <summary>"default": the projected embedding is added after the first conv.</summary>
    Default,
    /// <summary>"scale_shift": the projected embedding is split into scale and shift, applied as norm2(h)·(1 + scale) + shift.</summary>
    ScaleShift,
}

/// <summary>diffusers' down_block_types entries this port builds.</summary>
public enum DownBlockType
{
    /// <summary>Resnets only, then a downsampler.</summary>
    DownBlock2D,
    /// <summary>Resnets each followed by a Transformer2DModel cross-attending to encoder_hidden_states (Stable Diffusion).</summary>
    CrossAttnDownBlock2D,
    /// <summary>Resnets each followed by spatial self-attention (UNet2DModel).</summary>
    AttnDownBlock2D,
    /// <summary>The VAE encoder's block: resnets without a time embedding, then a downsampler.</summary>
    DownEncoderBlock2D,
}

/// <summary>diffusers' up_block_types entries this port builds.</summary>
public enum UpBlockType
{
    /// <summary>Resnets taking the skips, then an upsampler.</summary>
    UpBlock2D,
    /// <summary>Resnets taking the skips, each followed by a cross-attention Transformer2DModel (Stable Diffusion).</summary>
    CrossAttnUpBlock2D,
    /// <summary>Resnets taking the skips, each followed by spatial self-attention (UNet2DModel).</summary>
    AttnUpBlock2D,
    /// <summary>The VAE decoder's block: resnets without skips or time embedding, then an upsampler.</summary>
    UpDecoderBlock2D,
}

/// <summary>diffusers' mid_block_type.</summary>
public enum MidBlockType
{
    /// <summary>null: no mid block.</summary>
    None,
    /// <summary>Resnet, then cross-attention transformer and resnet pairs (Stable Diffusion).</summary>
    UNetMidBlock2DCrossAttn,
    /// <summary>Resnet, then spatial attention and resnet pairs (UNet2DModel, the VAE).</summary>
    UNetMidBlock2D,
}

internal static class ConfigChoices
{
    public static Activation Act(ConfigJson c, string key, Activation fallback = Activation.Silu)
        => c.Choice(key, fallback, ("silu", Activation.Silu), ("swish", Activation.Silu), ("gelu", Activation.Gelu), ("relu", Activation.Relu));

    public static Activation? ActOrNull(ConfigJson c, string key) => c.Has(key) ? Act(c, key) : null;

    public static TimeScaleShift Shift(ConfigJson c, string key)
        => c.Choice(key, TimeScaleShift.Default, ("default", TimeScaleShift.Default), ("scale_shift", TimeScaleShift.ScaleShift));

    public static T[] Blocks<T>(ConfigJson c, string key, string[] fallback, params T[] allowed) where T : struct, Enum
    {
        var names = c.Strings(key, fallback);
        var result = new T[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            // diffusers' get_down_block / get_up_block strip a leading "UNetRes"
            string n = names[i].StartsWith("UNetRes", StringComparison.Ordinal) ? names[i][7..] : names[i];
            if (!Enum.TryParse<T>(n, out var t) || !allowed.Contains(t))
                throw c.Error(key, $"block type \"{names[i]}\" is not supported (supported: {string.Join(", ", allowed)})");
            result[i] = t;
        }
        return result;
    }

    /// <summary>block_out_channels: at least one, all positive.</summary>
    public static int[] BlockOutChannels(ConfigJson c, int[] fallback)
    {
        var blockOut = c.Ints("block_out_channels", fallback);
        if (blockOut.Length == 0) throw c.Error("block_out_channels", "needs at least one block");
        Positive(c, "block_out_channels", blockOut);
        return blockOut;
    }

    /// <summary>down_block_types / up_block_types: one supported type per block_out_channels entry.</summary>
    public static T[] Blocks<T>(ConfigJson c, string key, int blockCount, string[] fallback, params T[] allowed) where T : struct, Enum
    {
        var blocks = Blocks(c, key, fallback, allowed);
        if (blocks.Length != blockCount)
            throw c.Error(key, $"{blocks.Length} {key[..key.IndexOf('_')]} blocks for {blockCount} block_out_channels");
        return blocks;
    }

    /// <summary>mid_block_type: null (no mid block), UNetMidBlock2DCrossAttn (the default) or UNetMidBlock2D.</summary>
    public static MidBlockType MidBlock(ConfigJson c)
        => c.IsNull("mid_block_type") ? MidBlockType.None
            : c.Choice("mid_block_type", MidBlockType.UNetMidBlock2DCrossAttn, ("UNetMidBlock2DCrossAttn", MidBlockType.UNetMidBlock2DCrossAttn), ("UNetMidBlock2D", MidBlockType.UNetMidBlock2D));

    public static void Positive(ConfigJson c, string key, IEnumerable<int> values)
    {
        if (values.Any(v => v <= 0)) throw c.Error(key, "values must be positive");
    }
}

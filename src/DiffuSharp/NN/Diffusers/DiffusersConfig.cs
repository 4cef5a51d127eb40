// The config.json of diffusers' UNet2DConditionModel, UNet2DModel, AutoencoderKL and ControlNetModel (diffusers
// 0.27.2, models/unets/unet_2d_condition.py, unet_2d.py, autoencoders/autoencoder_kl.py, controlnet.py), bound to
// immutable records with diffusers' defaults. Every key those constructors take is read; a value this port does
// not build (another block type, class or addition embeddings, fourier time embedding, …) is an error naming the
// key, the value and the file, and so is a key diffusers does not know. "int or per-block list" keys are expanded
// to one value per block here, so the models never see the union.
namespace DiffuSharp.NN.Diffusers;

/// <summary>Activation named by diffusers' act_fn ("silu"/"swish", "gelu", "relu").</summary>
public enum Activation { Silu, Gelu, Relu }

/// <summary>How a ResnetBlock2D applies the time embedding (resnet_time_scale_shift).</summary>
public enum TimeScaleShift { Default, ScaleShift }

public enum DownBlockType { DownBlock2D, CrossAttnDownBlock2D, AttnDownBlock2D, DownEncoderBlock2D }

public enum UpBlockType { UpBlock2D, CrossAttnUpBlock2D, AttnUpBlock2D, UpDecoderBlock2D }

public enum MidBlockType { None, UNetMidBlock2DCrossAttn, UNetMidBlock2D }

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

    public static void Positive(ConfigJson c, string key, IEnumerable<int> values)
    {
        if (values.Any(v => v <= 0)) throw c.Error(key, "values must be positive");
    }
}

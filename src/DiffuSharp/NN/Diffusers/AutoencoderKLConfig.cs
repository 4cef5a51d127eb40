// diffusers' AutoencoderKL config.json (diffusers 0.27.2, models/autoencoders/autoencoder_kl.py __init__): every key
// of the constructor; block types other than DownEncoderBlock2D / UpDecoderBlock2D are errors naming the key.
// Deviation: keys that later diffusers versions write (mid_block_add_attention, use_quant_conv, use_post_quant_conv,
// shift_factor) are accepted at the values that mean 0.27's architecture, so a VAE folder saved by a newer diffusers
// loads; any other value of them is an error.
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' AutoencoderKL config.json (0.27.2's constructor keys); property defaults are diffusers' own.
/// Block types other than DownEncoderBlock2D / UpDecoderBlock2D are refused.</summary>
public sealed record AutoencoderKLConfig
{
    /// <summary>in_channels: image channels (3).</summary>
    public int InChannels { get; init; } = 3;
    /// <summary>out_channels: decoded image channels (3).</summary>
    public int OutChannels { get; init; } = 3;
    /// <summary>block_out_channels: channels per encoder level; the decoder mirrors them, and each level but the last
    /// halves the size (SD: 128, 256, 512, 512, so f = 8).</summary>
    public int[] BlockOutChannels { get; init; } = [64];
    /// <summary>layers_per_block: resnets per encoder level (the decoder has one more per level).</summary>
    public int LayersPerBlock { get; init; } = 1;
    /// <summary>act_fn: the activation inside the resnets (SiLU).</summary>
    public Activation ActFn { get; init; } = Activation.Silu;
    /// <summary>latent_channels: channels of the latent space (SD: 4).</summary>
    public int LatentChannels { get; init; } = 4;
    /// <summary>norm_num_groups: GroupNorm groups throughout (32).</summary>
    public int NormNumGroups { get; init; } = 32;
    /// <summary>sample_size: the image size in pixels the VAE was trained at, and the default tile of tiled decoding
    /// (<see cref="VaeTiling.For"/>).</summary>
    public int SampleSize { get; init; } = 32;
    /// <summary>scaling_factor: what the pipelines multiply posterior samples by to get unit-variance latents (SD 1.x:
    /// 0.18215); not applied by the model.</summary>
    public double ScalingFactor { get; init; } = 0.18215;            // latents = scaling_factor · posterior sample (SD 1.x: 0.18215)
    /// <summary>latents_mean: per-channel latent means some newer configs carry; informational, not applied.</summary>
    public double[]? LatentsMean { get; init; }                      // informational (SDXL-era configs); not applied by the model
    /// <summary>latents_std: per-channel latent standard deviations some newer configs carry; informational, not
    /// applied.</summary>
    public double[]? LatentsStd { get; init; }
    /// <summary>force_upcast: fp16 pipelines run this VAE in float32; informational, as DiffuSharp always computes in
    /// float32.</summary>
    public bool ForceUpcast { get; init; } = true;                    // fp16 pipelines upcast the VAE; always float32 here

    /// <summary>Reads a VAE config.json; throws <see cref="InvalidDataException"/> naming the file and key for unknown
    /// keys, wrong types or unsupported values.</summary>
    public static AutoencoderKLConfig Load(string path) => Read(ConfigJson.Load(path));

    internal static AutoencoderKLConfig Read(ConfigJson c)
    {
        c.ExpectClass("AutoencoderKL");
        var blockOut = ConfigChoices.BlockOutChannels(c, [64]);
        int n = blockOut.Length;
        var down = ConfigChoices.Blocks(c, "down_block_types", n, ["DownEncoderBlock2D"], DownBlockType.DownEncoderBlock2D);
        var up = ConfigChoices.Blocks(c, "up_block_types", n, ["UpDecoderBlock2D"], UpBlockType.UpDecoderBlock2D);
        var config = new AutoencoderKLConfig
        {
            InChannels = c.Int("in_channels", 3),
            OutChannels = c.Int("out_channels", 3),
            BlockOutChannels = blockOut,
            LayersPerBlock = c.Int("layers_per_block", 1),
            ActFn = ConfigChoices.Act(c, "act_fn"),
            LatentChannels = c.Int("latent_channels", 4),
            NormNumGroups = c.Int("norm_num_groups", 32),
            SampleSize = c.SampleSize() ?? 32,
            ScalingFactor = c.Double("scaling_factor", 0.18215),
            LatentsMean = c.Doubles("latents_mean"),
            LatentsStd = c.Doubles("latents_std"),
            ForceUpcast = c.Bool("force_upcast", true),
        };
        c.MustBe("mid_block_add_attention", true, "a mid block without attention");
        c.MustBe("use_quant_conv", true, "a VAE without quant_conv");
        c.MustBe("use_post_quant_conv", true, "a VAE without post_quant_conv");
        c.MustBeNull("shift_factor", "a latent shift factor");
        c.RejectUnknownKeys("AutoencoderKL");
        if (config.LayersPerBlock <= 0) throw c.Error("layers_per_block", "must be positive");
        if (config.NormNumGroups <= 0) throw c.Error("norm_num_groups", "must be positive");
        foreach (int ch in blockOut)
            if (ch % config.NormNumGroups != 0) throw c.Error("norm_num_groups", $"does not divide {ch} channels");
        return config;
    }
}

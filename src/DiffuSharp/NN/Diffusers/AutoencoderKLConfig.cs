// diffusers' AutoencoderKL config.json (diffusers 0.27.2, models/autoencoders/autoencoder_kl.py __init__): every key
// of the constructor; block types other than DownEncoderBlock2D / UpDecoderBlock2D are errors naming the key.
// Deviation: keys that later diffusers versions write (mid_block_add_attention, use_quant_conv, use_post_quant_conv,
// shift_factor) are accepted at the values that mean 0.27's architecture, so a VAE folder saved by a newer diffusers
// loads; any other value of them is an error.
namespace DiffuSharp.NN.Diffusers;

public sealed record AutoencoderKLConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int[] BlockOutChannels { get; init; } = [64];
    public int LayersPerBlock { get; init; } = 1;
    public Activation ActFn { get; init; } = Activation.Silu;
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public int SampleSize { get; init; } = 32;
    public double ScalingFactor { get; init; } = 0.18215;            // latents = scaling_factor · posterior sample (SD 1.x: 0.18215)
    public double[]? LatentsMean { get; init; }                      // informational (SDXL-era configs); not applied by the model
    public double[]? LatentsStd { get; init; }
    public bool ForceUpcast { get; init; } = true;                    // fp16 pipelines upcast the VAE; always float32 here

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

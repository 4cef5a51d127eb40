// diffusers' UNet2DModel config.json (diffusers 0.27.2, models/unets/unet_2d.py __init__): every key of the
// constructor; what this port does not build (fourier or learned time embeddings, class_embed_type, resnet
// down/upsampling, skip blocks) is an error naming the key.
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' UNet2DModel config.json (0.27.2's constructor keys) with diffusers' defaults; what this port
/// does not build (fourier or learned time embeddings, class_embed_type, resnet up/downsampling, skip blocks) is
/// refused by name.</summary>
public sealed record UNet2DConfig
{
    /// <summary>sample_size: the image size the model was trained at; null when the config has none.</summary>
    public int? SampleSize { get; init; }
    /// <summary>in_channels: image channels in (3).</summary>
    public int InChannels { get; init; } = 3;
    /// <summary>out_channels: channels of the prediction (3; twice that with a learned variance).</summary>
    public int OutChannels { get; init; } = 3;
    /// <summary>center_input_sample: the sample becomes 2·sample − 1 before conv_in.</summary>
    public bool CenterInputSample { get; init; }
    /// <summary>freq_shift: downscale_freq_shift of the timestep sinusoids.</summary>
    public int FreqShift { get; init; }
    /// <summary>flip_sin_to_cos: the cos half comes first in the timestep sinusoids (default true).</summary>
    public bool FlipSinToCos { get; init; } = true;
    /// <summary>down_block_types, one per level (DownBlock2D or AttnDownBlock2D).</summary>
    public DownBlockType[] DownBlockTypes { get; init; } = [DownBlockType.DownBlock2D, DownBlockType.AttnDownBlock2D, DownBlockType.AttnDownBlock2D, DownBlockType.AttnDownBlock2D];
    /// <summary>up_block_types, one per level (UpBlock2D or AttnUpBlock2D).</summary>
    public UpBlockType[] UpBlockTypes { get; init; } = [UpBlockType.AttnUpBlock2D, UpBlockType.AttnUpBlock2D, UpBlockType.AttnUpBlock2D, UpBlockType.UpBlock2D];
    /// <summary>block_out_channels: the channels of each level.</summary>
    public int[] BlockOutChannels { get; init; } = [224, 448, 672, 896];
    /// <summary>layers_per_block: resnets per down block (each up block has one more).</summary>
    public int LayersPerBlock { get; init; } = 2;
    /// <summary>mid_block_scale_factor: the mid block's resnets divide their output by it.</summary>
    public double MidBlockScaleFactor { get; init; } = 1;
    /// <summary>downsample_padding of the down blocks' stride-2 convs.</summary>
    public int DownsamplePadding { get; init; } = 1;
    /// <summary>dropout probability in the resnets.</summary>
    public float Dropout { get; init; }
    /// <summary>act_fn: the resnets' activation.</summary>
    public Activation ActFn { get; init; } = Activation.Silu;
    /// <summary>attention_head_dim: channels per attention head; null: one head per block.</summary>
    public int? AttentionHeadDim { get; init; } = 8;                 // channels per head; null: one head per block
    /// <summary>norm_num_groups: GroupNorm groups throughout.</summary>
    public int NormNumGroups { get; init; } = 32;
    /// <summary>attn_norm_num_groups: the mid attention's GroupNorm groups; null: norm_num_groups.</summary>
    public int? AttnNormNumGroups { get; init; }                     // the mid attention's GroupNorm; null: norm_num_groups
    /// <summary>norm_eps: the GroupNorm epsilon.</summary>
    public float NormEps { get; init; } = 1e-5f;
    /// <summary>resnet_time_scale_shift: how resnets apply the time embedding.</summary>
    public TimeScaleShift ResnetTimeScaleShift { get; init; }
    /// <summary>add_attention: whether the mid block has its attention layer (default true).</summary>
    public bool AddAttention { get; init; } = true;                  // the mid block's attention
    /// <summary>num_class_embeds: the size of a class_embedding table added to the time embedding; null:
    /// unconditional.</summary>
    public int? NumClassEmbeds { get; init; }                        // class_embedding: nn.Embedding added to the time embedding
    /// <summary>num_train_timesteps: read for compatibility; only the learned time embedding (not built) uses
    /// it.</summary>
    public int? NumTrainTimesteps { get; init; }                     // only used by the "learned" time embedding (not built)

    /// <summary>The width of the time embedding, 4 × block_out_channels[0].</summary>
    public int TimeEmbedDim => BlockOutChannels[0] * 4;

    /// <summary>Reads and validates a UNet2DModel config.json; throws <see cref="InvalidDataException"/> naming the key
    /// and the file for unknown keys, wrong types or values this port does not build.</summary>
    public static UNet2DConfig Load(string path) => Read(ConfigJson.Load(path));

    internal static UNet2DConfig Read(ConfigJson c)
    {
        c.ExpectClass("UNet2DModel");
        var blockOut = ConfigChoices.BlockOutChannels(c, [224, 448, 672, 896]);
        int n = blockOut.Length;
        var down = ConfigChoices.Blocks(c, "down_block_types", n, ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
            DownBlockType.DownBlock2D, DownBlockType.AttnDownBlock2D);
        var up = ConfigChoices.Blocks(c, "up_block_types", n, ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
            UpBlockType.UpBlock2D, UpBlockType.AttnUpBlock2D);
        var config = new UNet2DConfig
        {
            SampleSize = c.SampleSize(),
            InChannels = c.Int("in_channels", 3),
            OutChannels = c.Int("out_channels", 3),
            CenterInputSample = c.Bool("center_input_sample", false),
            FreqShift = c.Int("freq_shift", 0),
            FlipSinToCos = c.Bool("flip_sin_to_cos", true),
            DownBlockTypes = down,
            UpBlockTypes = up,
            BlockOutChannels = blockOut,
            LayersPerBlock = c.Int("layers_per_block", 2),
            MidBlockScaleFactor = c.Double("mid_block_scale_factor", 1),
            DownsamplePadding = c.Int("downsample_padding", 1),
            Dropout = (float)c.Double("dropout", 0),
            ActFn = ConfigChoices.Act(c, "act_fn"),
            AttentionHeadDim = c.IsNull("attention_head_dim") ? null : c.Int("attention_head_dim", 8),
            NormNumGroups = c.IsNull("norm_num_groups") ? throw c.Error("norm_num_groups", "null is not supported (the blocks need groups)") : c.Int("norm_num_groups", 32),
            AttnNormNumGroups = c.IntOrNull("attn_norm_num_groups"),
            NormEps = (float)c.Double("norm_eps", 1e-5),
            ResnetTimeScaleShift = ConfigChoices.Shift(c, "resnet_time_scale_shift"),
            AddAttention = c.Bool("add_attention", true),
            NumClassEmbeds = c.IntOrNull("num_class_embeds"),
            NumTrainTimesteps = c.IntOrNull("num_train_timesteps"),
        };
        c.Choice("time_embedding_type", "positional", ("positional", "positional"));
        c.Choice("downsample_type", "conv", ("conv", "conv"));
        c.Choice("upsample_type", "conv", ("conv", "conv"));
        c.MustBeNull("class_embed_type", "a class embedding type");
        c.RejectUnknownKeys("UNet2DModel");
        if (config.LayersPerBlock <= 0) throw c.Error("layers_per_block", "must be positive");
        if (config.NormNumGroups <= 0) throw c.Error("norm_num_groups", "must be positive");
        if (config.AttentionHeadDim is <= 0) throw c.Error("attention_head_dim", "must be positive");
        if (config.AttnNormNumGroups is <= 0) throw c.Error("attn_norm_num_groups", "must be positive");
        for (int i = 0; i < n; i++)
        {
            if (blockOut[i] % config.NormNumGroups != 0) throw c.Error("norm_num_groups", $"does not divide block_out_channels[{i}] = {blockOut[i]}");
            if (config.AttentionHeadDim is int d && blockOut[i] % d != 0) throw c.Error("attention_head_dim", $"does not divide block_out_channels[{i}] = {blockOut[i]}");
        }
        if (config.NumClassEmbeds is int k && k <= 0) throw c.Error("num_class_embeds", "must be positive");
        return config;
    }
}

// diffusers' UNet2DModel config.json (diffusers 0.27.2, models/unets/unet_2d.py __init__): every key of the
// constructor; what this port does not build (fourier or learned time embeddings, class_embed_type, resnet
// down/upsampling, skip blocks) is an error naming the key.
namespace DiffuSharp.NN.Diffusers;

public sealed record UNet2DConfig
{
    public int? SampleSize { get; init; }
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public bool CenterInputSample { get; init; }
    public int FreqShift { get; init; }
    public bool FlipSinToCos { get; init; } = true;
    public DownBlockType[] DownBlockTypes { get; init; } = [DownBlockType.DownBlock2D, DownBlockType.AttnDownBlock2D, DownBlockType.AttnDownBlock2D, DownBlockType.AttnDownBlock2D];
    public UpBlockType[] UpBlockTypes { get; init; } = [UpBlockType.AttnUpBlock2D, UpBlockType.AttnUpBlock2D, UpBlockType.AttnUpBlock2D, UpBlockType.UpBlock2D];
    public int[] BlockOutChannels { get; init; } = [224, 448, 672, 896];
    public int LayersPerBlock { get; init; } = 2;
    public double MidBlockScaleFactor { get; init; } = 1;
    public int DownsamplePadding { get; init; } = 1;
    public float Dropout { get; init; }
    public Activation ActFn { get; init; } = Activation.Silu;
    public int? AttentionHeadDim { get; init; } = 8;                 // channels per head; null: one head per block
    public int NormNumGroups { get; init; } = 32;
    public int? AttnNormNumGroups { get; init; }                     // the mid attention's GroupNorm; null: norm_num_groups
    public float NormEps { get; init; } = 1e-5f;
    public TimeScaleShift ResnetTimeScaleShift { get; init; }
    public bool AddAttention { get; init; } = true;                  // the mid block's attention
    public int? NumClassEmbeds { get; init; }                        // class_embedding: nn.Embedding added to the time embedding
    public int? NumTrainTimesteps { get; init; }                     // only used by the "learned" time embedding (not built)

    public int TimeEmbedDim => BlockOutChannels[0] * 4;

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

// diffusers' ControlNetModel config.json (diffusers 0.27.2, models/controlnet.py __init__): every key of the
// constructor, per-block values expanded; what this port does not build (class and addition embeddings,
// encoder_hid_proj, other block types) is an error naming the key.
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' ControlNetModel config (the keys of its constructor), per-block values expanded, with diffusers'
/// defaults. <see cref="FromUNet"/> derives one from a UNet's config, as training starts.</summary>
public sealed record ControlNetConfig
{
    /// <summary>in_channels: latent channels of the sample (SD: 4).</summary>
    public int InChannels { get; init; } = 4;
    /// <summary>conditioning_channels: channels of the control image (3: RGB).</summary>
    public int ConditioningChannels { get; init; } = 3;
    /// <summary>flip_sin_to_cos: the cos half comes first in the timestep sinusoids (SD: true).</summary>
    public bool FlipSinToCos { get; init; } = true;
    /// <summary>freq_shift: downscale_freq_shift of the timestep sinusoids (SD: 0).</summary>
    public int FreqShift { get; init; }
    /// <summary>down_block_types, one per level.</summary>
    public DownBlockType[] DownBlockTypes { get; init; } = [DownBlockType.CrossAttnDownBlock2D, DownBlockType.CrossAttnDownBlock2D, DownBlockType.CrossAttnDownBlock2D, DownBlockType.DownBlock2D];
    /// <summary>mid_block_type: the cross-attention mid block (SD) or the plain one; a ControlNet always has one.</summary>
    public MidBlockType MidBlockType { get; init; } = MidBlockType.UNetMidBlock2DCrossAttn;
    /// <summary>only_cross_attention per down block: the first attention also attends to the encoder states.</summary>
    public bool[] OnlyCrossAttention { get; init; } = [false, false, false, false];
    /// <summary>block_out_channels: the channels of each level (SD 1.x: 320, 640, 1280, 1280).</summary>
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    /// <summary>layers_per_block: resnets (and transformers) per down block, the same for every block.</summary>
    public int LayersPerBlock { get; init; } = 2;
    /// <summary>downsample_padding of the down blocks' stride-2 convs.</summary>
    public int DownsamplePadding { get; init; } = 1;
    /// <summary>mid_block_scale_factor: the mid block's resnets divide their output by it.</summary>
    public double MidBlockScaleFactor { get; init; } = 1;
    /// <summary>act_fn: the activation of the resnets and the time embedding MLP.</summary>
    public Activation ActFn { get; init; } = Activation.Silu;
    /// <summary>norm_num_groups: GroupNorm groups throughout.</summary>
    public int NormNumGroups { get; init; } = 32;
    /// <summary>norm_eps: the resnets' GroupNorm epsilon.</summary>
    public float NormEps { get; init; } = 1e-5f;
    /// <summary>cross_attention_dim: the width of encoder_hidden_states (SD 1.x: 768; SD 2.x: 1024).</summary>
    public int CrossAttentionDim { get; init; } = 1280;
    /// <summary>transformer_layers_per_block: transformer layers in each attention of a down block, per block.</summary>
    public int[] TransformerLayersPerBlock { get; init; } = [1, 1, 1, 1];
    /// <summary>Attention heads per down block: num_attention_heads, or else attention_head_dim, which diffusers uses
    /// as the head count (a naming quirk it keeps).</summary>
    public int[] NumHeads { get; init; } = [8, 8, 8, 8];
    /// <summary>use_linear_projection: proj_in/proj_out are Linear (SD 2.x) rather than 1×1 convs (SD 1.x).</summary>
    public bool UseLinearProjection { get; init; }
    /// <summary>upcast_attention: read for compatibility; attention always runs in float32 here.</summary>
    public bool UpcastAttention { get; init; }
    /// <summary>resnet_time_scale_shift: how resnets apply the time embedding.</summary>
    public TimeScaleShift ResnetTimeScaleShift { get; init; }
    /// <summary>num_class_embeds: the size of a class_embedding table added to the time embedding; null: none.</summary>
    public int? NumClassEmbeds { get; init; }
    /// <summary>controlnet_conditioning_channel_order "bgr": the control image's channels are reversed before the
    /// embedding (false: "rgb", the default).</summary>
    public bool BgrConditioning { get; init; }
    /// <summary>conditioning_embedding_out_channels: the widths of the control image embedding; each entry after the
    /// first halves the image (stride-2 conv), so the embedding is 2^(len − 1) times smaller than the control image.</summary>
    public int[] ConditioningEmbeddingOutChannels { get; init; } = [16, 32, 96, 256];
    /// <summary>global_pool_conditions: every residual is averaged over H and W (shape (B, C, 1, 1)).</summary>
    public bool GlobalPoolConditions { get; init; }

    /// <summary>The width of the time embedding: 4 × block_out_channels[0].</summary>
    public int TimeEmbedDim => BlockOutChannels[0] * 4;

    /// <summary>The config diffusers' ControlNetModel.from_unet builds from a UNet2DConditionModel's: its encoder half's
    /// keys copied, the conditioning channels and embedding widths given (len − 1 stride-2 convs halve the control
    /// image, so with a VAE of factor 2^k it needs k + 1 entries). What a ControlNetModel cannot mirror (per-block layer
    /// counts or cross-attention widths, per-layer transformer depths, extra time-embedding options, no mid block) is
    /// an ArgumentException naming the key.</summary>
    public static ControlNetConfig FromUNet(UNet2DConditionConfig u, int conditioningChannels = 3, int[]? conditioningEmbeddingOutChannels = null)
    {
        ArgumentNullException.ThrowIfNull(u);
        int[] embOut = conditioningEmbeddingOutChannels ?? [16, 32, 96, 256];
        if (embOut.Length == 0 || embOut.Any(c => c <= 0)) throw new ArgumentException("conditioning_embedding_out_channels needs at least one positive entry");
        if (conditioningChannels <= 0) throw new ArgumentException($"conditioning_channels must be positive, got {conditioningChannels}");
        static ArgumentException Refuse(string key, string why) => new($"ControlNetModel.from_unet: the UNet's {key} {why}");
        if (u.LayersPerBlock.Distinct().Count() != 1) throw Refuse("layers_per_block", "differs between blocks; a ControlNetModel takes one count");
        if (u.CrossAttentionDim.Distinct().Count() != 1) throw Refuse("cross_attention_dim", "differs between blocks; a ControlNetModel takes one width");
        if (u.TransformerLayersPerBlock.Any(t => t.Distinct().Count() > 1)) throw Refuse("transformer_layers_per_block", "differs between the layers of a block");
        if (u.MidBlockType == MidBlockType.None) throw Refuse("mid_block_type", "is null; a ControlNetModel needs a mid block");
        if (u.ConvInKernel != 3) throw Refuse("conv_in_kernel", $"is {u.ConvInKernel}; a ControlNetModel's conv_in is 3×3");
        if (u.TimeEmbeddingDim is int d && d != u.BlockOutChannels[0] * 4) throw Refuse("time_embedding_dim", $"is {d}; a ControlNetModel's is 4 × block_out_channels[0]");
        if (u.TimestepPostAct is not null) throw Refuse("timestep_post_act", "is set; a ControlNetModel has none");
        if (u.TimeEmbeddingActFn is not null) throw Refuse("time_embedding_act_fn", "is set; a ControlNetModel has none");
        return new ControlNetConfig
        {
            InChannels = u.InChannels,
            ConditioningChannels = conditioningChannels,
            FlipSinToCos = u.FlipSinToCos,
            FreqShift = u.FreqShift,
            DownBlockTypes = [.. u.DownBlockTypes],
            MidBlockType = u.MidBlockType,
            OnlyCrossAttention = [.. u.OnlyCrossAttention],
            BlockOutChannels = [.. u.BlockOutChannels],
            LayersPerBlock = u.LayersPerBlock[0],
            DownsamplePadding = u.DownsamplePadding,
            MidBlockScaleFactor = u.MidBlockScaleFactor,
            ActFn = u.ActFn,
            NormNumGroups = u.NormNumGroups,
            NormEps = u.NormEps,
            CrossAttentionDim = u.CrossAttentionDim[0],
            TransformerLayersPerBlock = u.TransformerLayersPerBlock.Select(t => t.Length == 0 ? 1 : t[0]).ToArray(),
            NumHeads = [.. u.NumHeads],
            UseLinearProjection = u.UseLinearProjection,
            UpcastAttention = u.UpcastAttention,
            ResnetTimeScaleShift = u.ResnetTimeScaleShift,
            NumClassEmbeds = u.NumClassEmbeds,
            ConditioningEmbeddingOutChannels = [.. embOut],
        };
    }

    /// <summary>Reads and validates a ControlNetModel config.json; throws <see cref="InvalidDataException"/> naming the key
    /// and the file for unknown keys, wrong types or values this port does not build.</summary>
    public static ControlNetConfig Load(string path) => Read(ConfigJson.Load(path));

    internal static ControlNetConfig Read(ConfigJson c)
    {
        c.ExpectClass("ControlNetModel");
        var blockOut = ConfigChoices.BlockOutChannels(c, [320, 640, 1280, 1280]);
        int n = blockOut.Length;
        var down = ConfigChoices.Blocks(c, "down_block_types", n, ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            DownBlockType.DownBlock2D, DownBlockType.CrossAttnDownBlock2D);
        var mid = ConfigChoices.MidBlock(c);
        if (mid == MidBlockType.None) throw c.Error("mid_block_type", "diffusers' ControlNetModel needs a mid block");
        var headDim = c.IntPerBlock("attention_head_dim", n, 8);
        var heads = c.IntPerBlockOrNull("num_attention_heads", n) ?? headDim;
        var embOut = c.Ints("conditioning_embedding_out_channels", [16, 32, 96, 256]);
        if (embOut.Length == 0) throw c.Error("conditioning_embedding_out_channels", "needs at least one entry");
        var config = new ControlNetConfig
        {
            InChannels = c.Int("in_channels", 4),
            ConditioningChannels = c.Int("conditioning_channels", 3),
            FlipSinToCos = c.Bool("flip_sin_to_cos", true),
            FreqShift = c.Int("freq_shift", 0),
            DownBlockTypes = down,
            MidBlockType = mid,
            OnlyCrossAttention = c.BoolPerBlock("only_cross_attention", n, false),
            BlockOutChannels = blockOut,
            LayersPerBlock = c.Int("layers_per_block", 2),
            DownsamplePadding = c.Int("downsample_padding", 1),
            MidBlockScaleFactor = c.Double("mid_block_scale_factor", 1),
            ActFn = ConfigChoices.Act(c, "act_fn"),
            NormNumGroups = c.IntOrNull("norm_num_groups") ?? throw c.Error("norm_num_groups", "null is not supported"),
            NormEps = (float)c.Double("norm_eps", 1e-5),
            CrossAttentionDim = c.Int("cross_attention_dim", 1280),
            TransformerLayersPerBlock = c.IntPerBlock("transformer_layers_per_block", n, 1),
            NumHeads = heads,
            UseLinearProjection = c.Bool("use_linear_projection", false),
            UpcastAttention = c.Bool("upcast_attention", false),
            ResnetTimeScaleShift = ConfigChoices.Shift(c, "resnet_time_scale_shift"),
            NumClassEmbeds = c.IntOrNull("num_class_embeds"),
            BgrConditioning = c.Choice("controlnet_conditioning_channel_order", false, ("rgb", false), ("bgr", true)),
            ConditioningEmbeddingOutChannels = embOut,
            GlobalPoolConditions = c.Bool("global_pool_conditions", false),
        };
        c.MustBeNull("encoder_hid_dim", "an encoder_hid_proj");
        c.MustBeNull("encoder_hid_dim_type", "an encoder_hid_proj");
        c.MustBeNull("class_embed_type", "a class embedding type");
        c.MustBeNull("addition_embed_type", "an addition embedding");
        c.MustBeNull("addition_time_embed_dim", "an addition time embedding");
        c.MustBeNull("projection_class_embeddings_input_dim", "a projection class embedding");
        c.Informational("addition_embed_type_num_heads");
        c.RejectUnknownKeys("ControlNetModel");
        if (config.LayersPerBlock <= 0) throw c.Error("layers_per_block", "must be positive");
        if (config.NormNumGroups <= 0) throw c.Error("norm_num_groups", "must be positive");
        ConfigChoices.Positive(c, c.Has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim", heads);
        for (int i = 0; i < n; i++)
        {
            if (blockOut[i] % config.NormNumGroups != 0) throw c.Error("norm_num_groups", $"does not divide block_out_channels[{i}] = {blockOut[i]}");
            if (blockOut[i] % heads[i] != 0) throw c.Error("attention_head_dim", $"{heads[i]} heads do not divide {blockOut[i]} channels");
        }
        return config;
    }
}

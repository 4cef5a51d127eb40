// diffusers' UNet2DConditionModel config.json (diffusers 0.27.2, models/unets/unet_2d_condition.py __init__): every
// key of the constructor, per-block values expanded; what this port does not build is an error naming the key.
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' UNet2DConditionModel config (the keys of its constructor), per-block values expanded.</summary>
public sealed record UNet2DConditionConfig
{
    /// <summary>in_channels: latent channels in (SD: 4; 9 for inpainting UNets).</summary>
    public int InChannels { get; init; } = 4;
    /// <summary>out_channels: channels of the prediction (SD: 4).</summary>
    public int OutChannels { get; init; } = 4;
    /// <summary>center_input_sample: the sample becomes 2·sample − 1 before conv_in.</summary>
    public bool CenterInputSample { get; init; }                     // sample ← 2·sample − 1 first
    /// <summary>flip_sin_to_cos: the cos half comes first in the timestep sinusoids (SD: true).</summary>
    public bool FlipSinToCos { get; init; } = true;                  // cos half first in the timestep embedding
    /// <summary>freq_shift: downscale_freq_shift of the timestep sinusoids (SD: 0).</summary>
    public int FreqShift { get; init; }                              // downscale_freq_shift of the sinusoids
    /// <summary>down_block_types, one per level.</summary>
    public DownBlockType[] DownBlockTypes { get; init; } = [DownBlockType.CrossAttnDownBlock2D, DownBlockType.CrossAttnDownBlock2D, DownBlockType.CrossAttnDownBlock2D, DownBlockType.DownBlock2D];
    /// <summary>mid_block_type: the cross-attention mid block (SD), the plain one, or none.</summary>
    public MidBlockType MidBlockType { get; init; } = MidBlockType.UNetMidBlock2DCrossAttn;
    /// <summary>up_block_types, one per level.</summary>
    public UpBlockType[] UpBlockTypes { get; init; } = [UpBlockType.UpBlock2D, UpBlockType.CrossAttnUpBlock2D, UpBlockType.CrossAttnUpBlock2D, UpBlockType.CrossAttnUpBlock2D];
    /// <summary>only_cross_attention per down block (the up blocks take them reversed): the first attention also
    /// attends to the encoder states.</summary>
    public bool[] OnlyCrossAttention { get; init; } = [false, false, false, false];   // per down block
    /// <summary>block_out_channels: the channels of each level (SD 1.x: 320, 640, 1280, 1280).</summary>
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    /// <summary>layers_per_block per down block (each up block has one more).</summary>
    public int[] LayersPerBlock { get; init; } = [2, 2, 2, 2];
    /// <summary>downsample_padding of the down blocks' stride-2 convs.</summary>
    public int DownsamplePadding { get; init; } = 1;
    /// <summary>mid_block_scale_factor: the mid block's resnets divide their output by it.</summary>
    public double MidBlockScaleFactor { get; init; } = 1;             // mid resnets divide their output by it
    /// <summary>dropout probability in the resnets.</summary>
    public float Dropout { get; init; }
    /// <summary>act_fn: the resnets' activation.</summary>
    public Activation ActFn { get; init; } = Activation.Silu;
    /// <summary>norm_num_groups: GroupNorm groups throughout.</summary>
    public int NormNumGroups { get; init; } = 32;
    /// <summary>norm_eps: the resnets' GroupNorm epsilon.</summary>
    public float NormEps { get; init; } = 1e-5f;
    /// <summary>cross_attention_dim per down block: the width of encoder_hidden_states (SD 1.x: 768; SD 2.x:
    /// 1024).</summary>
    public int[] CrossAttentionDim { get; init; } = [1280, 1280, 1280, 1280];   // per down block
    /// <summary>transformer_layers_per_block per down block and layer.</summary>
    public int[][] TransformerLayersPerBlock { get; init; } = [[1, 1], [1, 1], [1, 1], [1, 1]];   // per down block, per layer
    /// <summary>reverse_transformer_layers_per_block per up block and layer; null: the reverse of
    /// TransformerLayersPerBlock.</summary>
    public int[][]? ReverseTransformerLayersPerBlock { get; init; }  // per up block, per layer; null: the reverse of the above
    /// <summary>Attention heads per down block; diffusers' attention_head_dim key holds the head count (a naming quirk
    /// it keeps).</summary>
    public int[] NumHeads { get; init; } = [8, 8, 8, 8];             // diffusers' attention_head_dim is the head count (a naming bug it keeps)
    /// <summary>use_linear_projection: proj_in/proj_out are Linear (SD 2.x) rather than 1×1 convs (SD 1.x).</summary>
    public bool UseLinearProjection { get; init; }                   // proj_in/proj_out Linear (SD 2.x) vs 1×1 conv (SD 1.x)
    /// <summary>upcast_attention: read for compatibility; attention always runs in float32 here.</summary>
    public bool UpcastAttention { get; init; }                       // softmax in float32 under fp16: always so here
    /// <summary>resnet_time_scale_shift: how resnets apply the time embedding.</summary>
    public TimeScaleShift ResnetTimeScaleShift { get; init; }
    /// <summary>resnet_skip_time_act: read as diffusers does; only blocks this port does not build use it.</summary>
    public bool ResnetSkipTimeAct { get; init; }                     // read, as diffusers does, but only Simple* blocks use it
    /// <summary>resnet_out_scale_factor: read as diffusers does; only blocks this port does not build use it.</summary>
    public double ResnetOutScaleFactor { get; init; } = 1.0;         // likewise
    /// <summary>time_embedding_dim; null: 4 × block_out_channels[0].</summary>
    public int? TimeEmbeddingDim { get; init; }                      // null: 4 × block_out_channels[0]
    /// <summary>time_embedding_act_fn: an activation applied to the time embedding before the resnets' projections;
    /// null: none.</summary>
    public Activation? TimeEmbeddingActFn { get; init; }
    /// <summary>timestep_post_act: an activation after the TimestepEmbedding MLP; null: none.</summary>
    public Activation? TimestepPostAct { get; init; }
    /// <summary>conv_in_kernel: the kernel size of conv_in (3).</summary>
    public int ConvInKernel { get; init; } = 3;
    /// <summary>conv_out_kernel: the kernel size of conv_out (3).</summary>
    public int ConvOutKernel { get; init; } = 3;
    /// <summary>num_class_embeds: the size of a class_embedding table added to the time embedding; null:
    /// none.</summary>
    public int? NumClassEmbeds { get; init; }                        // class_embedding: nn.Embedding added to the time embedding
    /// <summary>sample_size: the latent size the model was trained at (SD 1.x: 64 for 512-pixel images).</summary>
    public int SampleSize { get; init; } = 64;

    /// <summary>The width of the time embedding: TimeEmbeddingDim, or 4 × block_out_channels[0].</summary>
    public int TimeEmbedDim => TimeEmbeddingDim ?? BlockOutChannels[0] * 4;

    /// <summary>Largest layers_per_block accepted (diffusers' models use 1 to 3).</summary>
    public const int MaxLayersPerBlock = 1024;

    /// <summary>Reads and validates a UNet2DConditionModel config.json; throws <see cref="InvalidDataException"/>
    /// naming the key and the file for unknown keys, wrong types or values this port does not build.</summary>
    public static UNet2DConditionConfig Load(string path) => Read(ConfigJson.Load(path));

    internal static UNet2DConditionConfig Read(ConfigJson c)
    {
        c.ExpectClass("UNet2DConditionModel");
        var blockOut = ConfigChoices.BlockOutChannels(c, [320, 640, 1280, 1280]);
        int n = blockOut.Length;
        var down = ConfigChoices.Blocks(c, "down_block_types", n, ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            DownBlockType.DownBlock2D, DownBlockType.CrossAttnDownBlock2D);
        var up = ConfigChoices.Blocks(c, "up_block_types", n, ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            UpBlockType.UpBlock2D, UpBlockType.CrossAttnUpBlock2D);
        var mid = ConfigChoices.MidBlock(c);
        if (c.Has("num_attention_heads"))
            throw c.Error("num_attention_heads", "diffusers 0.27 refuses it for UNet2DConditionModel (the head count is attention_head_dim)");
        var layers = c.IntPerBlock("layers_per_block", n, 2);
        ConfigChoices.Positive(c, "layers_per_block", layers);
        if (layers.Any(l => l > MaxLayersPerBlock))                        // per-layer lists are built from it below
            throw c.Error("layers_per_block", $"at most {MaxLayersPerBlock} layers per block are supported");
        var heads = c.IntPerBlock("attention_head_dim", n, 8);
        ConfigChoices.Positive(c, "attention_head_dim", heads);
        var tl = c.NestedPerBlock("transformer_layers_per_block", n, layers) ?? layers.Select(l => Enumerable.Repeat(1, l).ToArray()).ToArray();
        var reverseTl = c.NestedPerBlock("reverse_transformer_layers_per_block", n, layers.Reverse().Select(l => l + 1).ToArray());
        var config = new UNet2DConditionConfig
        {
            InChannels = c.Int("in_channels", 4),
            OutChannels = c.Int("out_channels", 4),
            CenterInputSample = c.Bool("center_input_sample", false),
            FlipSinToCos = c.Bool("flip_sin_to_cos", true),
            FreqShift = c.Int("freq_shift", 0),
            DownBlockTypes = down,
            MidBlockType = mid,
            UpBlockTypes = up,
            OnlyCrossAttention = c.BoolPerBlock("only_cross_attention", n, false),
            BlockOutChannels = blockOut,
            LayersPerBlock = layers,
            DownsamplePadding = c.Int("downsample_padding", 1),
            MidBlockScaleFactor = c.Double("mid_block_scale_factor", 1),
            Dropout = (float)c.Double("dropout", 0),
            ActFn = ConfigChoices.Act(c, "act_fn"),
            NormNumGroups = c.IntOrNull("norm_num_groups") ?? throw c.Error("norm_num_groups", "null (no output norm) is not supported"),
            NormEps = (float)c.Double("norm_eps", 1e-5),
            CrossAttentionDim = c.IntPerBlock("cross_attention_dim", n, 1280),
            TransformerLayersPerBlock = tl,
            ReverseTransformerLayersPerBlock = reverseTl,
            NumHeads = heads,
            UseLinearProjection = c.Bool("use_linear_projection", false),
            UpcastAttention = c.Bool("upcast_attention", false),
            ResnetTimeScaleShift = ConfigChoices.Shift(c, "resnet_time_scale_shift"),
            ResnetSkipTimeAct = c.Bool("resnet_skip_time_act", false),
            ResnetOutScaleFactor = c.Double("resnet_out_scale_factor", 1.0),
            TimeEmbeddingDim = c.IntOrNull("time_embedding_dim"),
            TimeEmbeddingActFn = ConfigChoices.ActOrNull(c, "time_embedding_act_fn"),
            TimestepPostAct = ConfigChoices.ActOrNull(c, "timestep_post_act"),
            ConvInKernel = c.Int("conv_in_kernel", 3),
            ConvOutKernel = c.Int("conv_out_kernel", 3),
            NumClassEmbeds = c.IntOrNull("num_class_embeds"),
            SampleSize = c.SampleSize() ?? 64,
        };
        c.Choice("time_embedding_type", "positional", ("positional", "positional"));
        c.MustBeNull("encoder_hid_dim", "an encoder_hid_proj");
        c.MustBeNull("encoder_hid_dim_type", "an encoder_hid_proj");
        c.MustBeNull("class_embed_type", "a class embedding type");
        c.MustBeNull("addition_embed_type", "an addition embedding");
        c.MustBeNull("addition_time_embed_dim", "an addition time embedding");
        c.MustBeNull("time_cond_proj_dim", "a timestep condition projection");
        c.MustBeNull("projection_class_embeddings_input_dim", "a projection class embedding");
        c.MustBeNull("cross_attention_norm", "a cross-attention norm");
        c.MustBe("dual_cross_attention", false, "dual cross-attention");
        c.MustBe("class_embeddings_concat", false, "concatenated class embeddings");
        c.Choice("attention_type", "default", ("default", "default"));
        c.Informational("addition_embed_type_num_heads", "mid_block_only_cross_attention");   // only used by blocks not built here
        c.RejectUnknownKeys("UNet2DConditionModel");
        config.Validate(c);
        return config;
    }

    void Validate(ConfigJson c)
    {
        int n = BlockOutChannels.Length;
        if (TransformerLayersPerBlock.Select((t, i) => t.Length != LayersPerBlock[i]).Any(x => x))
            throw c.Error("transformer_layers_per_block", "each block needs one entry per layer");
        if (ReverseTransformerLayersPerBlock is null && TransformerLayersPerBlock.Any(t => t.Distinct().Count() > 1))
            throw c.Error("transformer_layers_per_block", "per-layer counts need reverse_transformer_layers_per_block, as diffusers requires");
        if (NumClassEmbeds is int k && k <= 0) throw c.Error("num_class_embeds", "must be positive");
        if (ConvInKernel % 2 == 0) throw c.Error("conv_in_kernel", "must be odd");
        if (ConvOutKernel % 2 == 0) throw c.Error("conv_out_kernel", "must be odd");
        if (TimeEmbedDim % 2 != 0) throw c.Error("time_embedding_dim", "must be even");
        if (NormNumGroups <= 0) throw c.Error("norm_num_groups", "must be positive");
        for (int i = 0; i < n; i++)
        {
            if (BlockOutChannels[i] % NormNumGroups != 0) throw c.Error("norm_num_groups", $"does not divide block_out_channels[{i}] = {BlockOutChannels[i]}");
            if (BlockOutChannels[i] % NumHeads[i] != 0) throw c.Error("attention_head_dim", $"{NumHeads[i]} heads do not divide {BlockOutChannels[i]} channels");
        }
    }
}

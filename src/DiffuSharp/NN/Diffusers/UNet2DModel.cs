// diffusers' UNet2DModel (diffusers 0.27.2, models/unets/unet_2d.py), the unconditional (or class-conditional)
// pixel-space UNet that diffusers trains in its DDPM examples: sinusoidal timestep → TimestepEmbedding (SiLU),
// optional class embedding added, conv_in, DownBlock2D / AttnDownBlock2D, the mid block (resnet, spatial attention,
// resnet), UpBlock2D / AttnUpBlock2D fed the skips in reverse, GroupNorm → SiLU → conv_out. Parameter names are
// diffusers' state dict names.
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' UNet2DModel, the pixel-space UNet of diffusers' DDPM examples: images (B, C, H, W) and timesteps
/// (optionally class labels) → the prediction (B, out_channels, H, W). Parameter names are diffusers' state dict
/// names.</summary>
public sealed class UNet2DModel : Module
{
    /// <summary>The config.json keys the model was built from.</summary>
    public UNet2DConfig Config { get; }
    readonly TimestepEmbedding _timeEmbedding;
    readonly Embedding? _classEmbedding;
    readonly Conv2d _convIn, _convOut;
    readonly List<UNetDownBlock> _downBlocks = [];
    readonly UNetMidBlock _midBlock;
    readonly List<UNetUpBlock> _upBlocks = [];
    readonly GroupNorm _convNormOut;

    /// <summary>A UNet of <paramref name="config"/>'s architecture with PyTorch-style random weights drawn from
    /// <paramref name="rng"/>.</summary>
    public UNet2DModel(UNet2DConfig config, Rng rng)
    {
        Config = config;
        var c = config;
        int[] ch = c.BlockOutChannels;
        int n = ch.Length, temb = c.TimeEmbedDim;
        _convIn = Register("conv_in", new Conv2d(c.InChannels, ch[0], 3, rng, padding: 1));
        _timeEmbedding = Register("time_embedding", new TimestepEmbedding(ch[0], temb, Activation.Silu, null, rng));
        if (c.NumClassEmbeds is int classes) _classEmbedding = Register("class_embedding", new Embedding(classes, temb, rng));

        var rs = new ResnetSettings(c.NormNumGroups, c.NormEps, c.ActFn, c.Dropout, c.ResnetTimeScaleShift);
        int output = ch[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = ch[i];
            BlockAttention? attn = c.DownBlockTypes[i] == DownBlockType.AttnDownBlock2D ? new SpatialAttention(c.AttentionHeadDim ?? output, c.NormNumGroups) : null;
            _downBlocks.Add(Register($"down_blocks.{i}", new UNetDownBlock(input, output, c.LayersPerBlock, temb, rs, attn, i < n - 1, c.DownsamplePadding, rng)));
        }

        int? attnGroups = c.AttnNormNumGroups ?? (c.ResnetTimeScaleShift == TimeScaleShift.Default ? c.NormNumGroups : null);
        _midBlock = Register("mid_block", new UNetMidBlock(ch[^1], temb, rs with { OutputScaleFactor = c.MidBlockScaleFactor },
            c.AddAttention ? new SpatialAttention(c.AttentionHeadDim ?? ch[^1], attnGroups) : null, 1, rng));

        var rev = ch.Reverse().ToArray();
        output = rev[0];
        for (int i = 0; i < n; i++)
        {
            int prev = output;
            output = rev[i];
            int input = rev[Math.Min(i + 1, n - 1)];
            BlockAttention? attn = c.UpBlockTypes[i] == UpBlockType.AttnUpBlock2D ? new SpatialAttention(c.AttentionHeadDim ?? output, c.NormNumGroups) : null;
            _upBlocks.Add(Register($"up_blocks.{i}", new UNetUpBlock(input, prev, output, c.LayersPerBlock + 1, temb, rs, attn, i < n - 1, rng)));
        }

        _convNormOut = Register("conv_norm_out", new GroupNorm(c.NormNumGroups, ch[0], c.NormEps));
        _convOut = Register("conv_out", new Conv2d(ch[0], c.OutChannels, 3, rng, padding: 1));
    }

    /// <summary>sample: (B, Cin, H, W) with H, W multiples of 2^(blocks − 1); timesteps: a scalar, (1) or (B); classLabels
    /// (B) when the config has num_class_embeds → (B, Cout, H, W). rng draws dropout masks in training mode.</summary>
    public Tensor Forward(Tensor sample, Tensor timesteps, int[]? classLabels = null, Rng? rng = null)
    {
        var c = Config;
        if (sample.Rank != 4 || sample.Dim(1) != c.InChannels)
            throw new ArgumentException($"UNet2DModel expects sample (B, {c.InChannels}, H, W), got {ShapeUtil.Format(sample.Shape)}");
        if ((classLabels is null) != (_classEmbedding is null))
            throw new ArgumentException(_classEmbedding is null ? "UNet2DModel: class labels given to a model without num_class_embeds" : "UNet2DModel: class_labels should be provided when num_class_embeds > 0");
        int b = sample.Dim(0);
        var ctx = new ForwardContext(Training, rng);
        if (c.CenterInputSample) sample = sample * 2.0 - 1.0;

        var t = TimestepEmbedding.Broadcast(timesteps, b, "UNet2DModel");
        var emb = _timeEmbedding.Embed(t, c.BlockOutChannels[0], c.FlipSinToCos, c.FreqShift, _classEmbedding, classLabels);   // (B, temb)

        var h = _convIn.Forward(sample);                                       // (B, C0, H, W)
        var skips = new List<Tensor> { h };
        foreach (var block in _downBlocks) h = block.Forward(h, emb, null, ctx, skips);
        h = _midBlock.Forward(h, emb, null, ctx);
        foreach (var block in _upBlocks) h = block.Forward(h, skips, emb, null, ctx);
        return _convOut.Forward(_convNormOut.ForwardSilu(h));                  // (B, Cout, H, W)
    }
}

// diffusers' ControlNetModel (diffusers 0.27.2, models/controlnet.py; Zhang et al. 2023, "Adding Conditional
// Control to Text-to-Image Diffusion Models"): a copy of the UNet's encoder half (time embedding, conv_in, down
// blocks, mid block) whose input is sample + ControlNetConditioningEmbedding(control image), and a zero-initialised
// 1×1 conv on each skip (controlnet_down_blocks) and on the mid output (controlnet_mid_block). The residuals are
// scaled by conditioning_scale (guess mode: by 10^(−1 … 0) from the first to the mid residual) and go into
// UNet2DConditionModel.Forward's downBlockAdditionalResiduals / midBlockAdditionalResidual.
namespace DiffuSharp.NN.Diffusers;

/// <summary>The residuals of one ControlNet call: one per UNet skip, and one for the mid block output.</summary>
public sealed record ControlNetOutput(IReadOnlyList<Tensor> DownBlockResSamples, Tensor MidBlockResSample)
{
    /// <summary>Element-wise sum of several nets' residuals (diffusers' MultiControlNetModel).</summary>
    public static ControlNetOutput Sum(IReadOnlyList<ControlNetOutput> outputs)
    {
        if (outputs.Count == 0) throw new ArgumentException("ControlNetOutput.Sum needs at least one output");
        var down = outputs[0].DownBlockResSamples.ToArray();
        var mid = outputs[0].MidBlockResSample;
        foreach (var o in outputs.Skip(1))
        {
            if (o.DownBlockResSamples.Count != down.Length) throw new ArgumentException("ControlNetOutput.Sum: the nets give different numbers of residuals");
            for (int i = 0; i < down.Length; i++) down[i] = down[i] + o.DownBlockResSamples[i];
            mid = mid + o.MidBlockResSample;
        }
        return new ControlNetOutput(down, mid);
    }
}

/// <summary>diffusers' ControlNetConditioningEmbedding: conv_in → SiLU, then per step a 3×3 conv and a stride-2 3×3
/// conv (each → SiLU), then a zero-initialised conv_out to the UNet's first channel count.</summary>
public sealed class ControlNetConditioningEmbedding : Module
{
    readonly Conv2d _convIn, _convOut;
    readonly List<Conv2d> _blocks = [];

    /// <summary>A conditioning embedding with random weights from <paramref name="rng"/> (conv_out zero).</summary>
    /// <param name="embeddingChannels">the output channels: the UNet's block_out_channels[0]</param>
    /// <param name="blockOutChannels">the widths of the steps (conditioning_embedding_out_channels); each entry after
    /// the first halves the image</param>
    /// <param name="conditioningChannels">the channels of the control image</param>
    public ControlNetConditioningEmbedding(int embeddingChannels, int[] blockOutChannels, int conditioningChannels, Rng rng)
    {
        _convIn = Register("conv_in", new Conv2d(conditioningChannels, blockOutChannels[0], 3, rng, padding: 1));
        for (int i = 0; i < blockOutChannels.Length - 1; i++)
        {
            int cin = blockOutChannels[i], cout = blockOutChannels[i + 1];
            _blocks.Add(Register($"blocks.{_blocks.Count}", new Conv2d(cin, cin, 3, rng, padding: 1)));
            _blocks.Add(Register($"blocks.{_blocks.Count}", new Conv2d(cin, cout, 3, rng, padding: 1, stride: 2)));
        }
        _convOut = Register("conv_out", Init.Zero(new Conv2d(blockOutChannels[^1], embeddingChannels, 3, rng, padding: 1)));
    }

    /// <summary>cond: (B, Ccond, H, W) → (B, embeddingChannels, H/2^k, W/2^k)</summary>
    public Tensor Forward(Tensor cond)
    {
        var h = _convIn.Forward(cond).Silu();
        foreach (var conv in _blocks) h = conv.Forward(h).Silu();
        return _convOut.Forward(h);
    }
}

/// <summary>diffusers' ControlNetModel: the encoder half of a UNet2DConditionModel that sees the noisy latents plus an
/// embedded control image and returns residuals for the UNet's skips and mid block (<see cref="ControlNetOutput"/>).
/// Parameter names are diffusers' state dict names.</summary>
public sealed partial class ControlNetModel : Module
{
    /// <summary>The config.json keys the model was built from.</summary>
    public ControlNetConfig Config { get; }
    readonly TimestepEmbedding _timeEmbedding;
    readonly Embedding? _classEmbedding;
    readonly Conv2d _convIn, _midOut;
    readonly ControlNetConditioningEmbedding _condEmbedding;
    readonly List<UNetDownBlock> _downBlocks = [];
    readonly List<Conv2d> _downOuts = [];
    readonly UNetMidBlock _midBlock;

    /// <summary>A ControlNet of <paramref name="config"/>'s architecture with random weights drawn from
    /// <paramref name="rng"/>, the zero convolutions at zero; <see cref="FromUNet"/> starts one from a UNet's
    /// weights instead, and <see cref="ComponentLoader.LoadControlNet(string)"/> loads a trained one.</summary>
    public ControlNetModel(ControlNetConfig config, Rng rng)
    {
        Config = config;
        var c = config;
        int[] ch = c.BlockOutChannels;
        int n = ch.Length, temb = c.TimeEmbedDim;
        _convIn = Register("conv_in", new Conv2d(c.InChannels, ch[0], 3, rng, padding: 1));
        _timeEmbedding = Register("time_embedding", new TimestepEmbedding(ch[0], temb, c.ActFn, null, rng));
        if (c.NumClassEmbeds is int classes) _classEmbedding = Register("class_embedding", new Embedding(classes, temb, rng));
        _condEmbedding = Register("controlnet_cond_embedding", new ControlNetConditioningEmbedding(ch[0], c.ConditioningEmbeddingOutChannels, c.ConditioningChannels, rng));

        var rs = new ResnetSettings(c.NormNumGroups, c.NormEps, c.ActFn, 0f, c.ResnetTimeScaleShift);
        Conv2d ZeroConv(int channels) => Init.Zero(new Conv2d(channels, channels, 1, rng));
        var downOuts = new List<Conv2d> { ZeroConv(ch[0]) };
        int output = ch[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = ch[i];
            BlockAttention? attn = c.DownBlockTypes[i] == DownBlockType.CrossAttnDownBlock2D
                ? new CrossAttention(c.NumHeads[i], Enumerable.Repeat(c.TransformerLayersPerBlock[i], c.LayersPerBlock).ToArray(), c.CrossAttentionDim, c.UseLinearProjection, c.OnlyCrossAttention[i])
                : null;
            _downBlocks.Add(Register($"down_blocks.{i}", new UNetDownBlock(input, output, c.LayersPerBlock, temb, rs, attn, i < n - 1, c.DownsamplePadding, rng)));
            for (int l = 0; l < c.LayersPerBlock; l++) downOuts.Add(ZeroConv(output));
            if (i < n - 1) downOuts.Add(ZeroConv(output));
        }
        for (int i = 0; i < downOuts.Count; i++) _downOuts.Add(Register($"controlnet_down_blocks.{i}", downOuts[i]));
        _midOut = Register("controlnet_mid_block", ZeroConv(ch[^1]));
        var midSettings = rs with { OutputScaleFactor = c.MidBlockScaleFactor };
        _midBlock = Register("mid_block", c.MidBlockType == MidBlockType.UNetMidBlock2DCrossAttn
            ? new UNetMidBlock(ch[^1], temb, midSettings, new CrossAttention(c.NumHeads[^1], [c.TransformerLayersPerBlock[^1]], c.CrossAttentionDim, c.UseLinearProjection, false), 1, rng)
            : new UNetMidBlock(ch[^1], temb, midSettings, null, 0, rng));
    }

    /// <summary>sample: (B, Cin, h, w); timesteps: a scalar, (1) or (B); encoderHiddenStates: (B, S, cross_attention_dim);
    /// controlnetCond: (B, conditioning_channels, h·2^k, w·2^k) in [0, 1] → the residuals for the UNet, scaled by
    /// conditioningScale (guessMode: by 10^(−1 … 0) times it, from the first residual to the mid one).</summary>
    public ControlNetOutput Forward(Tensor sample, Tensor timesteps, Tensor encoderHiddenStates, Tensor controlnetCond,
        double conditioningScale = 1.0, bool guessMode = false, int[]? classLabels = null)
    {
        var c = Config;
        if (sample.Rank != 4 || sample.Dim(1) != c.InChannels)
            throw new ArgumentException($"ControlNetModel expects sample (B, {c.InChannels}, H, W), got {ShapeUtil.Format(sample.Shape)}");
        int b = sample.Dim(0);
        if (encoderHiddenStates.Rank != 3 || encoderHiddenStates.Dim(0) != b || encoderHiddenStates.Dim(2) != c.CrossAttentionDim)
            throw new ArgumentException($"ControlNetModel expects encoder_hidden_states ({b}, S, {c.CrossAttentionDim}), got {ShapeUtil.Format(encoderHiddenStates.Shape)}");
        if (controlnetCond.Rank != 4 || controlnetCond.Dim(0) != b || controlnetCond.Dim(1) != c.ConditioningChannels)
            throw new ArgumentException($"ControlNetModel expects controlnet_cond ({b}, {c.ConditioningChannels}, H, W), got {ShapeUtil.Format(controlnetCond.Shape)}");
        if ((classLabels is null) != (_classEmbedding is null))
            throw new ArgumentException(_classEmbedding is null ? "ControlNetModel: class labels given to a model without num_class_embeds" : "ControlNetModel: this model needs class labels");
        var ctx = new ForwardContext(false, null);
        if (c.BgrConditioning) controlnetCond = controlnetCond.IndexSelect(1, Enumerable.Range(0, c.ConditioningChannels).Reverse().ToArray());

        // 1. time
        var t = TimestepEmbedding.Broadcast(timesteps, b, "ControlNetModel");
        var emb = _timeEmbedding.Embed(t, c.BlockOutChannels[0], c.FlipSinToCos, c.FreqShift, _classEmbedding, classLabels);   // (B, temb)

        // 2. pre-process: sample and control image embedded and added
        var cond = _condEmbedding.Forward(controlnetCond);                     // (B, C0, h, w)
        var h = _convIn.Forward(sample);
        if (!ShapeUtil.Equal(cond.ShapeSpan, h.ShapeSpan))
            throw new ArgumentException($"ControlNetModel: the control image embeds to {ShapeUtil.Format(cond.Shape)} but the sample to {ShapeUtil.Format(h.Shape)}");
        h = h + cond;

        // 3. down, 4. mid
        var skips = new List<Tensor> { h };
        foreach (var block in _downBlocks) h = block.Forward(h, emb, encoderHiddenStates, ctx, skips);
        h = _midBlock.Forward(h, emb, encoderHiddenStates, ctx);

        // 5. zero convs, 6. scaling
        var down = new Tensor[skips.Count];
        for (int i = 0; i < skips.Count; i++) down[i] = _downOuts[i].Forward(skips[i]);
        var mid = _midOut.Forward(h);
        if (guessMode && !c.GlobalPoolConditions)
        {
            for (int i = 0; i < down.Length; i++) down[i] = down[i] * (GuessScale(i, down.Length) * conditioningScale);
            mid = mid * (GuessScale(down.Length, down.Length) * conditioningScale);
        }
        else if (conditioningScale != 1.0)
        {
            for (int i = 0; i < down.Length; i++) down[i] = down[i] * conditioningScale;
            mid = mid * conditioningScale;
        }
        if (c.GlobalPoolConditions)
        {
            for (int i = 0; i < down.Length; i++) down[i] = down[i].Mean([2, 3], keepDim: true);
            mid = mid.Mean([2, 3], keepDim: true);
        }
        return new ControlNetOutput(down, mid);
    }

    /// <summary>torch.logspace(−1, 0, count + 1)[i], in float32 as diffusers computes it.</summary>
    static double GuessScale(int i, int count) => (float)Math.Pow(10.0, -1.0 + (double)i / count);
}

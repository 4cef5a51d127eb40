// diffusers' UNet2DConditionModel (diffusers 0.27.2, models/unets/unet_2d_condition.py), the denoiser of Stable
// Diffusion 1.x and 2.x, written anew: sinusoidal timestep → TimestepEmbedding, conv_in, down blocks (resnets with
// Transformer2DModel cross-attention over encoder_hidden_states where the config says CrossAttn), the mid block,
// up blocks fed the skips in reverse, GroupNorm → act → conv_out. Parameter names are diffusers' state dict names,
// so diffusion_pytorch_model.safetensors loads unchanged. ControlNet residuals are added to the skips and to the
// mid block output, as diffusers' down_block_additional_residuals / mid_block_additional_residual.
// Not built (config errors): class embedding types, addition embeddings, encoder_hid_proj, timestep_cond.
using DiffuSharp.Autograd;

namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' UNet2DConditionModel, the denoiser of Stable Diffusion 1.x and 2.x: noisy latents (B, C, h, w),
/// timesteps and encoder_hidden_states (B, L, cross_attention_dim) → the prediction (B, out_channels, h, w). Parameter
/// names are diffusers' state dict names; ControlNet residuals can be added to the skips and the mid block.</summary>
public sealed class UNet2DConditionModel : Module
{
    /// <summary>The config.json keys the model was built from.</summary>
    public UNet2DConditionConfig Config { get; }
    readonly TimestepEmbedding _timeEmbedding;
    readonly Embedding? _classEmbedding;
    readonly Conv2d _convIn, _convOut;
    readonly List<UNetDownBlock> _downBlocks = [];
    readonly UNetMidBlock? _midBlock;
    readonly List<UNetUpBlock> _upBlocks = [];
    readonly GroupNorm _convNormOut;

    /// <summary>A UNet of <paramref name="config"/>'s architecture with PyTorch-style random weights drawn from
    /// <paramref name="rng"/>; load trained weights with <see cref="ComponentLoader.LoadUNet2DCondition(string)"/> or
    /// <see cref="ModuleLoading.LoadFrom"/>.</summary>
    public UNet2DConditionModel(UNet2DConditionConfig config, Rng rng)
    {
        Config = config;
        var c = config;
        int[] ch = c.BlockOutChannels;
        int n = ch.Length, temb = c.TimeEmbedDim;
        _convIn = Register("conv_in", new Conv2d(c.InChannels, ch[0], c.ConvInKernel, rng, padding: (c.ConvInKernel - 1) / 2));
        _timeEmbedding = Register("time_embedding", new TimestepEmbedding(ch[0], temb, c.ActFn, c.TimestepPostAct, rng));
        if (c.NumClassEmbeds is int classes) _classEmbedding = Register("class_embedding", new Embedding(classes, temb, rng));

        // resnet_out_scale_factor and resnet_skip_time_act reach only the Simple*/ResnetDownsample blocks (not built here):
        // diffusers' get_down_block / get_up_block do not pass them to the blocks below.
        var rs = new ResnetSettings(c.NormNumGroups, c.NormEps, c.ActFn, c.Dropout, c.ResnetTimeScaleShift);
        int output = ch[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = ch[i];
            BlockAttention? attn = c.DownBlockTypes[i] == DownBlockType.CrossAttnDownBlock2D
                ? new CrossAttention(c.NumHeads[i], c.TransformerLayersPerBlock[i], c.CrossAttentionDim[i], c.UseLinearProjection, c.OnlyCrossAttention[i])
                : null;
            _downBlocks.Add(Register($"down_blocks.{i}", new UNetDownBlock(input, output, c.LayersPerBlock[i], temb, rs, attn, i < n - 1, c.DownsamplePadding, rng)));
        }

        var midSettings = rs with { OutputScaleFactor = c.MidBlockScaleFactor };
        if (c.MidBlockType == MidBlockType.UNetMidBlock2DCrossAttn)
            _midBlock = Register("mid_block", new UNetMidBlock(ch[^1], temb, midSettings,
                new CrossAttention(c.NumHeads[^1], [c.TransformerLayersPerBlock[^1][0]], c.CrossAttentionDim[^1], c.UseLinearProjection, false), 1, rng));
        else if (c.MidBlockType == MidBlockType.UNetMidBlock2D)
            _midBlock = Register("mid_block", new UNetMidBlock(ch[^1], temb, midSettings, null, 0, rng));

        var revCh = ch.Reverse().ToArray();
        var revHeads = c.NumHeads.Reverse().ToArray();
        var revLayers = c.LayersPerBlock.Reverse().ToArray();
        var revCross = c.CrossAttentionDim.Reverse().ToArray();
        var revOnlyCross = c.OnlyCrossAttention.Reverse().ToArray();
        var revTl = c.ReverseTransformerLayersPerBlock
            ?? c.TransformerLayersPerBlock.Reverse().Select((t, i) => Enumerable.Repeat(t[0], revLayers[i] + 1).ToArray()).ToArray();
        output = revCh[0];
        for (int i = 0; i < n; i++)
        {
            int prev = output;
            output = revCh[i];
            int input = revCh[Math.Min(i + 1, n - 1)];
            BlockAttention? attn = c.UpBlockTypes[i] == UpBlockType.CrossAttnUpBlock2D
                ? new CrossAttention(revHeads[i], revTl[i], revCross[i], c.UseLinearProjection, revOnlyCross[i])
                : null;
            _upBlocks.Add(Register($"up_blocks.{i}", new UNetUpBlock(input, prev, output, revLayers[i] + 1, temb, rs, attn, i < n - 1, rng)));
        }

        _convNormOut = Register("conv_norm_out", new GroupNorm(c.NormNumGroups, ch[0], c.NormEps));
        _convOut = Register("conv_out", new Conv2d(ch[0], c.OutChannels, c.ConvOutKernel, rng, padding: (c.ConvOutKernel - 1) / 2));
    }

    /// <summary>How many down-block residuals a ControlNet must hand in (conv_in's output and every skip).</summary>
    public int SkipCount => 1 + _downBlocks.Sum(b => b.SkipCount);

    /// <summary>ε (or v) prediction. sample: (B, Cin, H, W); timesteps: a scalar, (1) or (B); encoderHiddenStates:
    /// (B, S, cross_attention_dim). classLabels (B) when the config has num_class_embeds. The ControlNet residuals
    /// come together or not at all: one per skip (<see cref="SkipCount"/>) and one for the mid block output.
    /// <paramref name="rng"/> draws dropout masks in training mode.</summary>
    public Tensor Forward(Tensor sample, Tensor timesteps, Tensor encoderHiddenStates, int[]? classLabels = null,
        IReadOnlyList<Tensor>? downBlockAdditionalResiduals = null, Tensor? midBlockAdditionalResidual = null, Rng? rng = null)
    {
        var c = Config;
        if (sample.Rank != 4 || sample.Dim(1) != c.InChannels)
            throw new ArgumentException($"UNet2DConditionModel expects sample (B, {c.InChannels}, H, W), got {ShapeUtil.Format(sample.Shape)}");
        int b = sample.Dim(0);
        if (encoderHiddenStates.Rank != 3 || encoderHiddenStates.Dim(0) != b || encoderHiddenStates.Dim(2) != c.CrossAttentionDim[0])
            throw new ArgumentException($"UNet2DConditionModel expects encoder_hidden_states ({b}, S, {c.CrossAttentionDim[0]}), got {ShapeUtil.Format(encoderHiddenStates.Shape)}");
        if ((downBlockAdditionalResiduals is null) != (midBlockAdditionalResidual is null))
            throw new ArgumentException("UNet2DConditionModel: ControlNet residuals need both the down-block and the mid-block residuals");
        if (downBlockAdditionalResiduals is not null && downBlockAdditionalResiduals.Count != SkipCount)
            throw new ArgumentException($"UNet2DConditionModel: {downBlockAdditionalResiduals.Count} down-block residuals, expected {SkipCount}");
        if ((classLabels is null) != (_classEmbedding is null))
            throw new ArgumentException(_classEmbedding is null ? "UNet2DConditionModel: class labels given to a model without num_class_embeds" : "UNet2DConditionModel: this model needs class labels");
        var ctx = new ForwardContext(Training, rng);

        // 0. upsampling sizes are forwarded when the input is not a multiple of the overall factor
        int factor = 1 << _upBlocks.Count(u => u.HasUpsampler);
        bool forwardUpsampleSize = sample.Dim(2) % factor != 0 || sample.Dim(3) % factor != 0;
        if (c.CenterInputSample) sample = sample * 2.0 - 1.0;

        // 1. time
        var t = TimestepEmbedding.Broadcast(timesteps, b, "UNet2DConditionModel");
        var emb = _timeEmbedding.Embed(t, c.BlockOutChannels[0], c.FlipSinToCos, c.FreqShift, _classEmbedding, classLabels);   // (B, temb)
        if (c.TimeEmbeddingActFn is { } tact) emb = tact.Apply(emb);

        // 2. pre-process, 3. down
        var h = _convIn.Forward(sample);                                       // (B, C0, H, W)
        var skips = new List<Tensor> { h };
        foreach (var block in _downBlocks) h = block.Forward(h, emb, encoderHiddenStates, ctx, skips);
        if (downBlockAdditionalResiduals is not null)
            for (int i = 0; i < skips.Count; i++) skips[i] = skips[i] + downBlockAdditionalResiduals[i];

        // 4. mid
        if (_midBlock is not null) h = _midBlock.Forward(h, emb, encoderHiddenStates, ctx);
        if (midBlockAdditionalResidual is not null) h = h + midBlockAdditionalResidual;

        // 5. up
        for (int i = 0; i < _upBlocks.Count; i++)
        {
            var block = _upBlocks[i];
            int[]? size = null;
            if (i < _upBlocks.Count - 1 && forwardUpsampleSize)
            {
                var next = skips[skips.Count - block.SkipCount - 1];         // the skip the next block starts with
                size = [next.Dim(2), next.Dim(3)];
            }
            h = block.Forward(h, skips, emb, encoderHiddenStates, ctx, size);
        }

        // 6. post-process
        h = c.ActFn == Activation.Silu ? _convNormOut.ForwardSilu(h) : c.ActFn.Apply(_convNormOut.Forward(h));
        return _convOut.Forward(h);                                            // (B, Cout, H, W)
    }
}

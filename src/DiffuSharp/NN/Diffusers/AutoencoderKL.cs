// diffusers' AutoencoderKL (diffusers 0.27.2, models/autoencoders/autoencoder_kl.py and vae.py), Stable Diffusion's
// VAE: Encoder (conv_in, DownEncoderBlock2D × n with stride-2 convs padded right/bottom, mid block with one spatial
// attention, GroupNorm → SiLU → conv_out to 2·latent channels) → quant_conv → DiagonalGaussianDistribution (mean,
// log-variance clamped to [−30, 20]); post_quant_conv → Decoder (conv_in, mid block, UpDecoderBlock2D × n, GroupNorm
// → SiLU → conv_out). scaling_factor is the pipelines' latent scale, not applied here (as in diffusers).
//
// Memory: without gradients inside a TensorScope, every resnet and attention of the encoder and decoder runs in a
// scope of its own that keeps only its output (UNetBlocks.cs), so a 512×512 decode holds a few full-resolution
// activations at a time, not all of them. The decoder also tells its blocks that their inputs die, so each resnet
// (ResnetBlock2D's inference path) releases what it consumed, writes conv2 into the shortcut's storage and never makes
// its normalised activations; Stable Diffusion 1.5's decode holds at most 512 MiB of activations (BENCHMARKS.md).

using DiffuSharp.Autograd;

namespace DiffuSharp.NN.Diffusers;

/// <summary>The VAE posterior N(mean, exp(logvar)) per latent element: mean, logvar: (B, latent, h, w).</summary>
public sealed class DiagonalGaussian(Tensor mean, Tensor logVar)
{
    /// <summary>The posterior mean, (B, latent, h, w).</summary>
    public Tensor Mean { get; } = mean;
    /// <summary>Log-variance, clamped to [−30, 20] as diffusers does.</summary>
    public Tensor LogVar { get; } = logVar;
    /// <summary>The standard deviation exp(logvar / 2), same shape as the mean.</summary>
    public Tensor Std => (LogVar * 0.5).Exp();
    /// <summary>The variance exp(logvar), same shape as the mean.</summary>
    public Tensor Var => LogVar.Exp();
    /// <summary>The mode (= mean).</summary>
    public Tensor Mode() => Mean;
    /// <summary>mean + std · noise, noise ~ N(0, 1) of the mean's shape (given, e.g. a recorded draw).</summary>
    public Tensor Sample(Tensor noise) => Mean + Std * noise;
    /// <summary>mean + std · ε with ε drawn from rng.</summary>
    public Tensor Sample(Rng rng) => Sample(Tensor.RandN(Mean.Shape, rng));
}

/// <summary>diffusers' AutoencoderKL, Stable Diffusion's VAE: an encoder to a diagonal Gaussian posterior over latents
/// (quant_conv included) and a decoder back to images (post_quant_conv included). The scaling_factor is left to the
/// pipelines, as in diffusers.</summary>
public sealed class AutoencoderKL : Module
{
    /// <summary>The config.json keys the model was built from.</summary>
    public AutoencoderKLConfig Config { get; }
    readonly VaeEncoder _encoder;
    readonly VaeDecoder _decoder;
    readonly Conv2d _quantConv, _postQuantConv;

    /// <summary>A VAE of <paramref name="config"/>'s architecture with PyTorch-style random weights drawn from
    /// <paramref name="rng"/>; load trained weights with <see cref="ModuleLoading.LoadFrom"/>.</summary>
    public AutoencoderKL(AutoencoderKLConfig config, Rng rng)
    {
        Config = config;
        _encoder = Register("encoder", new VaeEncoder(config, rng));
        _decoder = Register("decoder", new VaeDecoder(config, rng));
        _quantConv = Register("quant_conv", new Conv2d(2 * config.LatentChannels, 2 * config.LatentChannels, 1, rng));
        _postQuantConv = Register("post_quant_conv", new Conv2d(config.LatentChannels, config.LatentChannels, 1, rng));
    }

    /// <summary>The latent scale of the pipelines (latents = scaling_factor · sample).</summary>
    public double ScalingFactor => Config.ScalingFactor;

    /// <summary>x: (B, Cin, H, W) → the posterior over latents (B, latent, H/f, W/f), f = 2^(blocks − 1).</summary>
    public DiagonalGaussian Encode(Tensor x)
    {
        if (x.Rank != 4 || x.Dim(1) != Config.InChannels)
            throw new ArgumentException($"AutoencoderKL.Encode expects (B, {Config.InChannels}, H, W), got {ShapeUtil.Format(x.Shape)}");
        var moments = _quantConv.Forward(_encoder.Forward(x));                 // (B, 2·latent, h, w)
        var parts = moments.Chunk(2, 1);
        return new DiagonalGaussian(parts[0], parts[1].Clamp(-30.0, 20.0));
    }

    /// <summary>z: (B, latent, h, w) (unscaled: divide pipeline latents by scaling_factor first) → (B, Cout, h·f, w·f).</summary>
    public Tensor Decode(Tensor z)
    {
        if (z.Rank != 4 || z.Dim(1) != Config.LatentChannels)
            throw new ArgumentException($"AutoencoderKL.Decode expects (B, {Config.LatentChannels}, h, w), got {ShapeUtil.Format(z.Shape)}");
        return _decoder.Forward(_postQuantConv.Forward(z));
    }

    /// <summary>decode(posterior mode), or decode(posterior sample) when samplePosterior (needs rng).</summary>
    public Tensor Forward(Tensor x, bool samplePosterior = false, Rng? rng = null)
    {
        var posterior = Encode(x);
        var z = samplePosterior ? posterior.Sample(rng ?? throw new ArgumentException("AutoencoderKL: sampling the posterior needs an Rng")) : posterior.Mode();
        return Decode(z);
    }

    internal static ResnetSettings Settings(AutoencoderKLConfig c) => new(c.NormNumGroups, 1e-6f, c.ActFn);

}

/// <summary>diffusers' Encoder (vae.py) with double_z: (B, Cin, H, W) → (B, 2·latent, H/f, W/f).</summary>
public sealed class VaeEncoder : Module
{
    readonly Conv2d _convIn, _convOut;
    readonly List<UNetDownBlock> _downBlocks = [];
    readonly UNetMidBlock _midBlock;
    readonly GroupNorm _convNormOut;

    /// <summary>diffusers' Encoder of <paramref name="c"/>'s architecture with weights drawn from
    /// <paramref name="rng"/>.</summary>
    public VaeEncoder(AutoencoderKLConfig c, Rng rng)
    {
        int[] ch = c.BlockOutChannels;
        var s = AutoencoderKL.Settings(c);
        _convIn = Register("conv_in", new Conv2d(c.InChannels, ch[0], 3, rng, padding: 1));
        int output = ch[0];
        for (int i = 0; i < ch.Length; i++)
        {
            int input = output;
            output = ch[i];
            _downBlocks.Add(Register($"down_blocks.{i}", new UNetDownBlock(input, output, c.LayersPerBlock, null, s, null, i < ch.Length - 1, 0, rng)));
        }
        _midBlock = Register("mid_block", new UNetMidBlock(ch[^1], null, s, new SpatialAttention(ch[^1], c.NormNumGroups), 1, rng));
        _convNormOut = Register("conv_norm_out", new GroupNorm(c.NormNumGroups, ch[^1], 1e-6f));
        _convOut = Register("conv_out", new Conv2d(ch[^1], 2 * c.LatentChannels, 3, rng, padding: 1));
    }

    /// <summary>(B, Cin, H, W) → (B, 2·latent, H/f, W/f): the posterior's mean and log-variance stacked along the
    /// channels, before quant_conv.</summary>
    public Tensor Forward(Tensor x)
    {
        var ctx = new ForwardContext(false, null);
        var h = _convIn.Forward(x);                                          // (B, C0, H, W)
        foreach (var block in _downBlocks) h = block.Forward(h, null, null, ctx);
        h = _midBlock.Forward(h, null, null, ctx);
        return _convOut.Forward(_convNormOut.ForwardSilu(h));               // (B, 2·latent, h, w)
    }
}

/// <summary>diffusers' Decoder (vae.py), norm_type "group": (B, latent, h, w) → (B, Cout, h·f, w·f).</summary>
public sealed class VaeDecoder : Module
{
    readonly Conv2d _convIn, _convOut;
    readonly UNetMidBlock _midBlock;
    readonly List<UNetUpBlock> _upBlocks = [];
    readonly GroupNorm _convNormOut;

    /// <summary>diffusers' Decoder of <paramref name="c"/>'s architecture with weights drawn from
    /// <paramref name="rng"/>.</summary>
    public VaeDecoder(AutoencoderKLConfig c, Rng rng)
    {
        int[] ch = c.BlockOutChannels;
        var s = AutoencoderKL.Settings(c);
        _convIn = Register("conv_in", new Conv2d(c.LatentChannels, ch[^1], 3, rng, padding: 1));
        _midBlock = Register("mid_block", new UNetMidBlock(ch[^1], null, s, new SpatialAttention(ch[^1], c.NormNumGroups), 1, rng));
        var rev = ch.Reverse().ToArray();
        int output = rev[0];
        for (int i = 0; i < rev.Length; i++)
        {
            int prev = output;
            output = rev[i];
            _upBlocks.Add(Register($"up_blocks.{i}", new UNetUpBlock(prev, null, output, c.LayersPerBlock + 1, null, s, null, i < rev.Length - 1, rng)));
        }
        _convNormOut = Register("conv_norm_out", new GroupNorm(c.NormNumGroups, ch[0], 1e-6f));
        _convOut = Register("conv_out", new Conv2d(ch[0], c.OutChannels, 3, rng, padding: 1));
    }

    /// <summary>(B, latent, h, w) → (B, Cout, h·f, w·f), after post_quant_conv.</summary>
    public Tensor Forward(Tensor z)
    {
        var ctx = new ForwardContext(false, null);
        var h = _convIn.Forward(z);                                          // (B, C_last, h, w)
        bool lean = !GradMode.IsEnabled;                                     // each output freed once consumed, norms in place
        h = _midBlock.Forward(h, null, null, ctx, inputDies: lean);
        foreach (var block in _upBlocks) h = block.Forward(h, null, null, null, ctx, inputDies: lean);
        var last = h;
        var y = BlockParts.Layer(() => _convOut.Forward(lean
            ? Ops.GroupNormInPlaceNoGrad(last, _convNormOut.Groups, _convNormOut.Weight, _convNormOut.Bias, _convNormOut.Eps, silu: true)
            : _convNormOut.ForwardSilu(last)));                              // (B, Cout, H, W)
        BlockParts.Drop(last);
        return y;
    }
}

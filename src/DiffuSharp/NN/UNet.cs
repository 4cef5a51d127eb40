// improved-diffusion's UNetModel (openai/improved-diffusion, improved_diffusion/unet.py), written anew: a
// timestep-conditioned UNet of ResBlocks with attention at chosen resolutions. Parameter names are exactly those
// of the reference state dict (time_embed.0.weight, input_blocks.1.0.in_layers.2.weight, middle_block.1.qkv.weight,
// out.2.bias, …), so its checkpoints load unchanged. GroupNorm runs in float32 as GroupNorm32 does.
using DiffuSharp.Autograd;

namespace DiffuSharp.NN;

/// <summary>
/// improved-diffusion's UNetModel: ε (or x_0, v; and a variance when learned) from a noisy image x_t, its timesteps and,
/// for a class-conditional model, class labels (<see cref="Forward(Tensor, Tensor, int[], Rng, IList{Tensor})"/>).
/// Parameter names are the reference's state-dict names, so its checkpoints load unchanged. Load a trained one with
/// <see cref="Models.ModelFolder.Load"/>.
/// </summary>
public sealed class UNetModel : Module
{
    /// <summary>The network's shape: channels, levels, attention, classes.</summary>
    public UNetConfig Config { get; }
    readonly Linear _timeEmbed0, _timeEmbed2;
    readonly Embedding? _labelEmb;
    readonly List<EmbedSequential> _inputBlocks = [];
    readonly EmbedSequential _middleBlock;
    readonly List<EmbedSequential> _outputBlocks = [];
    readonly GroupNorm _outNorm;
    readonly Conv2d _outConv;

    /// <summary>A freshly initialised network (improved-diffusion's initialisation, output layers zero), drawn from <paramref name="rng"/>.</summary>
    public UNetModel(UNetConfig config, Rng rng)
    {
        config.Validate();
        Config = config;
        int mc = config.ModelChannels, embDim = mc * 4;
        _timeEmbed0 = Register("time_embed.0", new Linear(mc, embDim, rng));
        _timeEmbed2 = Register("time_embed.2", new Linear(embDim, embDim, rng));
        // label_emb: one row per class, plus the null label's row last when the model has one (classifier-free guidance).
        if (config.NumClasses is int classes) _labelEmb = Register("label_emb", new Embedding(classes + (config.NullClass ? 1 : 0), embDim, rng));

        var first = new EmbedSequential();
        first.Add(new Conv2d(config.InChannels, mc, 3, rng, padding: 1));
        _inputBlocks.Add(Register("input_blocks.0", first));
        var chans = new Stack<int>();
        chans.Push(mc);
        int ch = mc, ds = 1;
        var mult = config.Mult;
        for (int level = 0; level < mult.Length; level++)
        {
            for (int r = 0; r < config.NumResBlocks; r++)
            {
                var block = new EmbedSequential();
                block.Add(new ResBlock(ch, embDim, config.Dropout, mult[level] * mc, config.UseScaleShiftNorm, config.UseConvSkip, rng));
                ch = mult[level] * mc;
                if (config.AttentionDs.Contains(ds)) block.Add(new AttentionBlock(ch, config.NumHeads, rng));
                _inputBlocks.Add(Register($"input_blocks.{_inputBlocks.Count}", block));
                chans.Push(ch);
            }
            if (level != mult.Length - 1)
            {
                var down = new EmbedSequential();
                down.Add(new Downsample(ch, config.ConvResample, rng));
                _inputBlocks.Add(Register($"input_blocks.{_inputBlocks.Count}", down));
                chans.Push(ch);
                ds *= 2;
            }
        }

        _middleBlock = Register("middle_block", new EmbedSequential());
        _middleBlock.Add(new ResBlock(ch, embDim, config.Dropout, ch, config.UseScaleShiftNorm, config.UseConvSkip, rng));
        _middleBlock.Add(new AttentionBlock(ch, config.NumHeads, rng));
        _middleBlock.Add(new ResBlock(ch, embDim, config.Dropout, ch, config.UseScaleShiftNorm, config.UseConvSkip, rng));

        for (int level = mult.Length - 1; level >= 0; level--)
        {
            for (int i = 0; i <= config.NumResBlocks; i++)
            {
                var block = new EmbedSequential();
                block.Add(new ResBlock(ch + chans.Pop(), embDim, config.Dropout, mc * mult[level], config.UseScaleShiftNorm, config.UseConvSkip, rng));
                ch = mc * mult[level];
                if (config.AttentionDs.Contains(ds)) block.Add(new AttentionBlock(ch, config.HeadsUpsample, rng));
                if (level > 0 && i == config.NumResBlocks)
                {
                    block.Add(new Upsample(ch, config.ConvResample, rng));
                    ds /= 2;
                }
                _outputBlocks.Add(Register($"output_blocks.{_outputBlocks.Count}", block));
            }
        }

        _outNorm = Register("out.0", new GroupNorm(32, ch));
        _outConv = Register("out.2", Init.Zero(new Conv2d(mc, config.OutChannels, 3, rng, padding: 1)));
    }

    /// <summary>Runs the model. x: (B, Cin, H, W); timesteps: (B), float; classes: (B) labels when class-conditional.
    /// Returns (B, Cout, H, W). <paramref name="rng"/> draws dropout masks in training mode.</summary>
    public Tensor Forward(Tensor x, Tensor timesteps, int[]? classes = null, Rng? rng = null, IList<Tensor>? features = null)
    {
        if (x.Rank != 4 || x.Dim(1) != Config.InChannels)
            throw new ArgumentException($"UNet expects input (B, {Config.InChannels}, H, W), got {ShapeUtil.Format(x.Shape)}");
        int factor = 1 << (Config.Mult.Length - 1);
        if (x.Dim(2) % factor != 0 || x.Dim(3) % factor != 0)
            throw new ArgumentException($"UNet: input size {x.Dim(2)}×{x.Dim(3)} is not divisible by the downsampling factor {factor}");
        if (timesteps.Rank != 1 || timesteps.Dim(0) != x.Dim(0))
            throw new ArgumentException($"UNet: timesteps must be ({x.Dim(0)}), got {ShapeUtil.Format(timesteps.Shape)}");
        if ((classes is not null) != (_labelEmb is not null))
            throw new ArgumentException(_labelEmb is null ? "UNet: class labels given to a model that is not class-conditional" : "UNet: this model is class-conditional and needs class labels");
        if (classes is not null && classes.Length != x.Dim(0))
            throw new ArgumentException($"UNet: {classes.Length} class labels for a batch of {x.Dim(0)}");
        if (Training && Config.Dropout > 0 && rng is null)
            throw new ArgumentException("UNet: training mode with dropout needs an Rng for the dropout masks");

        var ctx = new ForwardContext(Training, rng);
        // Under no-grad inside a TensorScope, nothing holds a block's temporaries once the block is done: each block
        // runs in a scope of its own that keeps only its output, so the peak is the block outputs plus one block's
        // temporaries instead of every activation of the network.
        bool perBlock = features is null && !GradMode.IsEnabled && TensorScope.Current is not null;
        using var forward = perBlock ? TensorScope.Begin() : null;
        var emb = _timeEmbed2.Forward(_timeEmbed0.Forward(TimestepEmbedding(timesteps, Config.ModelChannels)).Silu());   // (B, 4·mc)
        if (_labelEmb is not null) emb += _labelEmb.Forward(classes!);
        features?.Add(emb);

        var hs = new Stack<Tensor>();
        var h = x;
        foreach (var block in _inputBlocks)
        {
            using (var s = perBlock ? TensorScope.Begin() : null) h = KeepOutput(s, block.Forward(h, emb, ctx));
            hs.Push(h);
            features?.Add(h);
        }
        using (var s = perBlock ? TensorScope.Begin() : null) h = KeepOutput(s, _middleBlock.Forward(h, emb, ctx));
        features?.Add(h);
        foreach (var block in _outputBlocks)
        {
            using (var s = perBlock ? TensorScope.Begin() : null)
                h = KeepOutput(s, block.Forward(h, hs.Pop(), emb, ctx));      // (B, C + C_skip, H, W) in
            features?.Add(h);
        }
        return KeepOutput(forward, _outConv.Forward(_outNorm.ForwardSilu(h)));
    }

    static Tensor KeepOutput(TensorScope? scope, Tensor y) => scope is null ? y : scope.Keep(y);

    /// <summary>Sinusoidal embedding, cos half first then sin (improved-diffusion's timestep_embedding), in float32
    /// as the reference computes it: f_i = exp(−ln(10⁴)·i / half), args = t·f.</summary>
    public static Tensor TimestepEmbedding(Tensor timesteps, int dim, double maxPeriod = 10000)
    {
        int b = timesteps.Dim(0), half = dim / 2;
        var t = timesteps.Contiguous().Data;
        var embT = Tensor.Zeros(b, dim);                                      // (B, dim)
        var emb = embT.Data;
        float negLog = (float)-Math.Log(maxPeriod);
        var freqs = new float[half];
        for (int i = 0; i < half; i++) freqs[i] = MathF.Exp(negLog * i / half);
        for (int n = 0; n < b; n++)
            for (int i = 0; i < half; i++)
            {
                float arg = t[n] * freqs[i];
                emb[n * dim + i] = MathF.Cos(arg);
                emb[n * dim + half + i] = MathF.Sin(arg);
            }
        return embT;                            // odd dim: the last column stays zero, as the reference pads
    }
}

/// <summary>What every block needs besides its input: training mode and the dropout RNG.</summary>
public readonly record struct ForwardContext(bool Training, Rng? Rng);

/// <summary>A layer inside a UNet block: takes the activation and the timestep embedding.</summary>
public interface IEmbedLayer
{
    /// <summary>Runs the layer on x (B, C, H, W) with the timestep embedding <paramref name="emb"/> (B, E); layers that
    /// do not use the embedding ignore it.</summary>
    Tensor Forward(Tensor x, Tensor emb, ForwardContext ctx);
}

/// <summary>improved-diffusion's TimestepEmbedSequential: children named 0, 1, 2, … run in order.</summary>
public sealed class EmbedSequential : Module
{
    readonly List<IEmbedLayer> _layers = [];

    /// <summary>Appends <paramref name="layer"/> as the next child, named by its index ("0", "1", …).</summary>
    public void Add<T>(T layer) where T : Module, IEmbedLayer
    {
        Register(_layers.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), layer);
        _layers.Add(layer);
    }

    /// <summary>Runs the layers in order, each given the embedding.</summary>
    public Tensor Forward(Tensor x, Tensor emb, ForwardContext ctx)
    {
        foreach (var layer in _layers) x = layer.Forward(x, emb, ctx);
        return x;
    }

    /// <summary>Forward(cat(a, b) along the channels), handing both parts to a ResBlock first layer (which may then
    /// never make the concatenation).</summary>
    public Tensor Forward(Tensor a, Tensor b, Tensor emb, ForwardContext ctx)
    {
        if (_layers.Count == 0 || _layers[0] is not ResBlock first) return Forward(Tensor.Concat([a, b], 1), emb, ctx);
        var x = first.Forward(a, b, emb, ctx);
        for (int i = 1; i < _layers.Count; i++) x = _layers[i].Forward(x, emb, ctx);
        return x;
    }
}

// Convolution and normalisation layers with PyTorch's default initialisation (kaiming-uniform, a = √5:
// weights and biases U(−1/√fan_in, 1/√fan_in); GroupNorm weight 1, bias 0).
namespace DiffuSharp.NN;

/// <summary>torch.nn.Conv2d with zero padding and PyTorch's default initialisation (weights and bias uniform in
/// ±1/√fan_in).</summary>
public sealed class Conv2d : Module, IEmbedLayer
{
    /// <summary>(Cout, Cin, k, k), the parameter "weight".</summary>
    public Tensor Weight { get; }
    /// <summary>(Cout), the parameter "bias"; null for a conv built without bias.</summary>
    public Tensor? Bias { get; }
    /// <summary>Cin, the input channels.</summary>
    public int InChannels { get; }
    /// <summary>Cout, the output channels.</summary>
    public int OutChannels { get; }
    /// <summary>The stride in both directions.</summary>
    public int Stride { get; }
    /// <summary>The zero padding on every side, in pixels.</summary>
    public int Padding { get; }

    /// <summary>A square <paramref name="kernelSize"/> convolution with weights (and bias, unless
    /// <paramref name="bias"/> is false) drawn from <paramref name="rng"/> as PyTorch does.</summary>
    public Conv2d(int inChannels, int outChannels, int kernelSize, Rng rng, int stride = 1, int padding = 0, bool bias = true)
    {
        (InChannels, OutChannels, Stride, Padding) = (inChannels, outChannels, stride, padding);
        float bound = 1f / MathF.Sqrt(inChannels * kernelSize * kernelSize);
        Weight = Parameter("weight", Tensor.Rand([outChannels, inChannels, kernelSize, kernelSize], rng, -bound, bound));
        if (bias) Bias = Parameter("bias", Tensor.Rand([outChannels], rng, -bound, bound));
    }

    /// <summary>x: (B, Cin, H, W) → (B, Cout, H', W')</summary>
    public Tensor Forward(Tensor x) => Tensor.Conv2d(x, Weight, Bias, Stride, Padding);

    /// <summary>residual + Forward(x), the residual added as the output is written.</summary>
    public Tensor Forward(Tensor x, Tensor residual) => Tensor.Conv2d(x, Weight, Bias, Stride, Padding, residual);

    Tensor IEmbedLayer.Forward(Tensor x, Tensor emb, ForwardContext ctx) => Forward(x);   // input_blocks.0.0
}

/// <summary>A kernel-size-1 Conv1d (improved-diffusion's qkv and proj_out): weight (Cout, Cin, 1).</summary>
public sealed class Conv1x1 : Module
{
    /// <summary>(Cout, Cin, 1), the parameter "weight".</summary>
    public Tensor Weight { get; }
    /// <summary>(Cout), the parameter "bias".</summary>
    public Tensor Bias { get; }

    /// <summary>A 1×1 conv with weights and bias drawn uniform in ±1/√Cin from <paramref name="rng"/>, as PyTorch's
    /// default.</summary>
    public Conv1x1(int inChannels, int outChannels, Rng rng)
    {
        float bound = 1f / MathF.Sqrt(inChannels);
        Weight = Parameter("weight", Tensor.Rand([outChannels, inChannels, 1], rng, -bound, bound));
        Bias = Parameter("bias", Tensor.Rand([outChannels], rng, -bound, bound));
    }

    /// <summary>x: (B, Cin, L) → (B, Cout, L)</summary>
    public Tensor Forward(Tensor x) => Tensor.Conv1d(x, Weight, Bias);

    /// <summary>residual + Forward(x), the residual added as each image's output is finished.</summary>
    public Tensor Forward(Tensor x, Tensor residual) => Tensor.Conv1d(x, Weight, Bias, residual);
}

/// <summary>GroupNorm with affine weight and bias (improved-diffusion's normalization(): 32 groups, eps 1e-5).</summary>
public sealed class GroupNorm : Module
{
    /// <summary>(C), the per-channel scale γ, initialised to 1.</summary>
    public Tensor Weight { get; }
    /// <summary>(C), the per-channel shift β, initialised to 0.</summary>
    public Tensor Bias { get; }
    /// <summary>How many groups the channels are split into.</summary>
    public int Groups { get; }
    /// <summary>Added to the variance before the square root.</summary>
    public float Eps { get; }

    /// <summary>GroupNorm of <paramref name="channels"/> channels in <paramref name="groups"/> groups (channels must
    /// divide evenly).</summary>
    public GroupNorm(int groups, int channels, float eps = 1e-5f)
    {
        if (channels % groups != 0) throw new ArgumentException($"GroupNorm: {channels} channels are not divisible into {groups} groups");
        (Groups, Eps) = (groups, eps);
        Weight = Parameter("weight", Tensor.Ones(channels));
        Bias = Parameter("bias", Tensor.Zeros(channels));
    }

    /// <summary>torch.nn.GroupNorm: x (B, C, …) normalised over each group's channels and positions, then scaled and
    /// shifted per channel.</summary>
    public Tensor Forward(Tensor x) => Tensor.GroupNorm(x, Groups, Weight, Bias, Eps);

    /// <summary>silu(group_norm(x)), fused.</summary>
    public Tensor ForwardSilu(Tensor x) => Tensor.GroupNormSilu(x, Groups, Weight, Bias, Eps);
}

// Convolution and normalisation layers with PyTorch's default initialisation (kaiming-uniform, a = √5:
// weights and biases U(−1/√fan_in, 1/√fan_in); GroupNorm weight 1, bias 0).
namespace DiffuSharp.NN;

public sealed class Conv2d : Module, IEmbedLayer
{
    public Tensor Weight { get; }
    public Tensor? Bias { get; }
    public int InChannels { get; }
    public int OutChannels { get; }
    public int Stride { get; }
    public int Padding { get; }

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
    public Tensor Weight { get; }
    public Tensor Bias { get; }

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
    public Tensor Weight { get; }
    public Tensor Bias { get; }
    public int Groups { get; }
    public float Eps { get; }

    public GroupNorm(int groups, int channels, float eps = 1e-5f)
    {
        if (channels % groups != 0) throw new ArgumentException($"GroupNorm: {channels} channels are not divisible into {groups} groups");
        (Groups, Eps) = (groups, eps);
        Weight = Parameter("weight", Tensor.Ones(channels));
        Bias = Parameter("bias", Tensor.Zeros(channels));
    }

    public Tensor Forward(Tensor x) => Tensor.GroupNorm(x, Groups, Weight, Bias, Eps);

    /// <summary>silu(group_norm(x)), fused.</summary>
    public Tensor ForwardSilu(Tensor x) => Tensor.GroupNormSilu(x, Groups, Weight, Bias, Eps);
}

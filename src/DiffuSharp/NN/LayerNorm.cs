// torch.nn.LayerNorm over the last dimension with affine weight and bias (the parameter names PyTorch saves:
// "weight", "bias"), on the fused LayerNorm primitive.
namespace DiffuSharp.NN;

/// <summary>Layer normalisation over the trailing dimension of size <c>features</c>, with learnt γ and β.</summary>
public sealed class LayerNorm : Module
{
    /// <summary>(features), the scale γ, initialised to 1.</summary>
    public Tensor Weight { get; }
    /// <summary>(features), the shift β, initialised to 0.</summary>
    public Tensor Bias { get; }
    /// <summary>The size of the normalised trailing dimension.</summary>
    public int Features { get; }
    /// <summary>Added to the variance before the square root (PyTorch's default 1e-5).</summary>
    public float Eps { get; }

    /// <summary>A LayerNorm over a trailing dimension of <paramref name="features"/>; throws when features is not
    /// positive.</summary>
    public LayerNorm(int features, float eps = 1e-5f)
    {
        if (features <= 0) throw new ArgumentException($"LayerNorm: features must be positive, got {features}");
        (Features, Eps) = (features, eps);
        Weight = Parameter("weight", Tensor.Ones(features));
        Bias = Parameter("bias", Tensor.Zeros(features));
    }

    /// <summary>x: (…, features) → (…, features)</summary>
    public Tensor Forward(Tensor x)
    {
        if (x.Rank == 0 || x.Dim(-1) != Features)
            throw new ArgumentException($"LayerNorm expects (…, {Features}), got {ShapeUtil.Format(x.Shape)}");
        return Tensor.LayerNorm(x, [Features], Weight, Bias, Eps);
    }
}

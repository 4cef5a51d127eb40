// Public API of the normalisation family, dropout and fused attention: thin delegations to Autograd/Ops.Norm.cs
// and Autograd/Ops.Attention.cs.
using DiffuSharp.Autograd;

namespace DiffuSharp;

public sealed partial class Tensor
{
    /// <summary>Group normalisation as torch.nn.functional.group_norm: per (sample, group) mean and biased variance,
    /// then a per-channel affine map.</summary>
    /// <param name="x">(B, C, *spatial)</param>
    /// <param name="groups">number of groups; must divide C</param>
    /// <param name="weight">γ: (C), or null for 1</param>
    /// <param name="bias">β: (C), or null for 0</param>
    /// <returns>(B, C, *spatial)</returns>
    public static Tensor GroupNorm(Tensor x, int groups, Tensor? weight = null, Tensor? bias = null, float eps = 1e-5f)
        => Ops.GroupNorm(x, groups, weight, bias, eps, silu: false);

    /// <summary>silu(group_norm(x)) in one pass forward and one backward (improved-diffusion's normalization → SiLU).</summary>
    /// <param name="x">(B, C, *spatial)</param>
    /// <param name="groups">number of groups; must divide C</param>
    /// <param name="weight">γ: (C), or null for 1</param>
    /// <param name="bias">β: (C), or null for 0</param>
    public static Tensor GroupNormSilu(Tensor x, int groups, Tensor? weight = null, Tensor? bias = null, float eps = 1e-5f)
        => Ops.GroupNorm(x, groups, weight, bias, eps, silu: true);

    /// <summary>Layer normalisation over the trailing dims, as torch.nn.functional.layer_norm.</summary>
    /// <param name="x">(…, *normalizedShape)</param>
    /// <param name="normalizedShape">the trailing dims to normalise over, e.g. [C] or [H, W]</param>
    /// <param name="weight">γ: normalizedShape, or null for 1</param>
    /// <param name="bias">β: normalizedShape, or null for 0</param>
    public static Tensor LayerNorm(Tensor x, int[] normalizedShape, Tensor? weight = null, Tensor? bias = null, float eps = 1e-5f)
        => Ops.LayerNorm(x, normalizedShape, weight, bias, eps);

    /// <summary>Inverted dropout: zeroes each element with probability p (the mask is a function of one number drawn from rng) and scales
    /// the rest by 1/(1 − p). The identity, consuming nothing from rng, when training is false or p is 0.</summary>
    public Tensor Dropout(float p, Rng rng, bool training = true) => Ops.Dropout(this, p, rng, training);

    /// <summary>Fused scaled-dot-product attention softmax(scale·q·kᵀ)·v.</summary>
    /// <param name="q">(…, Lq, D)</param>
    /// <param name="k">(…, Lk, D)</param>
    /// <param name="v">(…, Lk, Dv)</param>
    /// <param name="scale">usually 1/√D</param>
    /// <param name="causal">query i attends to keys j ≤ i only (a causal mask, without a mask tensor)</param>
    /// <returns>(…, Lq, Dv)</returns>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, float scale, bool causal = false) => Ops.Attention(q, k, v, scale, causal);

    /// <summary>improved-diffusion's QKVAttention: qkv split per head into q, k, v of (ch, T) each, attention over the
    /// T positions with logits scaled by 1/√ch. The same as Attention on transposed slices, without copies.</summary>
    /// <param name="qkv">(B, 3·heads·ch, T), per head q, k and v stacked along channels</param>
    /// <param name="heads">number of heads</param>
    /// <returns>(B, heads·ch, T)</returns>
    public static Tensor QkvAttention(Tensor qkv, int heads) => Ops.QkvAttention(qkv, heads);
}

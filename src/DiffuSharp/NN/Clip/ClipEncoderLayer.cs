// One pre-norm transformer layer of CLIP's text encoder, as transformers' CLIPEncoderLayer / CLIPAttention / CLIPMLP
// (models/clip/modeling_clip.py, transformers 4.39): h += out_proj(attention(layer_norm1(h))), then
// h += fc2(act(fc1(layer_norm2(h)))). The causal mask is the fused attention's causal option, not an additive
// mask tensor; transformers scales q before Q·Kᵀ, we scale inside the softmax (the same product up to rounding).
namespace DiffuSharp.NN.Clip;

/// <summary>Multi-head self-attention with q, k, v and output projections (CLIPAttention).</summary>
public sealed class ClipAttention : Module
{
    readonly Linear _q, _k, _v, _out;
    readonly int _heads, _headDim;

    /// <summary>CLIP self-attention over <paramref name="hidden"/> channels in <paramref name="heads"/> heads (hidden
    /// must divide evenly); weights drawn from <paramref name="rng"/>, or zero when it is null.</summary>
    public ClipAttention(int hidden, int heads, Rng? rng)
    {
        if (hidden % heads != 0) throw new ArgumentException($"ClipAttention: hidden size {hidden} is not divisible by {heads} heads");
        (_heads, _headDim) = (heads, hidden / heads);
        _k = Register("k_proj", new Linear(hidden, hidden, rng));
        _v = Register("v_proj", new Linear(hidden, hidden, rng));
        _q = Register("q_proj", new Linear(hidden, hidden, rng));
        _out = Register("out_proj", new Linear(hidden, hidden, rng));
    }

    /// <summary>x: (B, L, C) → (B, L, C), position i attending to positions ≤ i when causal.</summary>
    public Tensor Forward(Tensor x, bool causal)
    {
        int b = x.Dim(0), l = x.Dim(1), c = x.Dim(2);
        Tensor Heads(Tensor y) => y.Reshape(b, l, _heads, _headDim).Permute(0, 2, 1, 3);                   // (B, H, L, Dh)
        var qkv = Linear.Forward(x, _q, _k, _v);                                                             // one product when packed
        var o = Tensor.Attention(Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]), 1f / MathF.Sqrt(_headDim), causal);
        return _out.Forward(o.Permute(0, 2, 1, 3).Reshape(b, l, c));                                         // (B, L, C)
    }
}

/// <summary>fc1 → activation → fc2 (CLIPMLP).</summary>
public sealed class ClipMlp : Module
{
    readonly Linear _fc1, _fc2;
    readonly ClipActivation _act;

    /// <summary>CLIP's MLP, <paramref name="hidden"/> → <paramref name="intermediate"/> → hidden with
    /// <paramref name="act"/> between; weights drawn from <paramref name="rng"/>, or zero when it is null.</summary>
    public ClipMlp(int hidden, int intermediate, ClipActivation act, Rng? rng)
    {
        _act = act;
        _fc1 = Register("fc1", new Linear(hidden, intermediate, rng));
        _fc2 = Register("fc2", new Linear(intermediate, hidden, rng));
    }

    /// <summary>x: (…, C) → (…, C)</summary>
    public Tensor Forward(Tensor x)
    {
        var h = _fc1.Forward(x);                                              // (…, intermediate)
        h = _act switch
        {
            ClipActivation.QuickGelu => h.QuickGelu(),                        // OpenAI's QuickGELU: x·σ(1.702x), one pass
            ClipActivation.Gelu => h.Gelu(),                                  // exact x·Φ(x), transformers' "gelu"
            _ => throw new InvalidOperationException($"unknown activation {_act}"),
        };
        return _fc2.Forward(h);
    }
}

/// <summary>CLIPEncoderLayer: pre-norm self-attention and MLP, each added to the residual stream.</summary>
public sealed class ClipEncoderLayer : Module
{
    readonly ClipAttention _attn;
    readonly LayerNorm _norm1, _norm2;
    readonly ClipMlp _mlp;

    /// <summary>One encoder layer of <paramref name="config"/>'s sizes; weights drawn from <paramref name="rng"/>, or
    /// zero when it is null.</summary>
    public ClipEncoderLayer(ClipTextConfig config, Rng? rng)
    {
        _attn = Register("self_attn", new ClipAttention(config.HiddenSize, config.NumAttentionHeads, rng));
        _norm1 = Register("layer_norm1", new LayerNorm(config.HiddenSize, (float)config.LayerNormEps));
        _mlp = Register("mlp", new ClipMlp(config.HiddenSize, config.IntermediateSize, config.HiddenAct, rng));
        _norm2 = Register("layer_norm2", new LayerNorm(config.HiddenSize, (float)config.LayerNormEps));
    }

    /// <summary>h: (B, L, C) → (B, L, C)</summary>
    public Tensor Forward(Tensor h, bool causal)
    {
        h = h + _attn.Forward(_norm1.Forward(h), causal);
        return h + _mlp.Forward(_norm2.Forward(h));
    }
}

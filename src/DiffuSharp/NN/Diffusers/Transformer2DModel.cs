// diffusers' Transformer2DModel for continuous inputs (models/transformers/transformer_2d.py) with its
// BasicTransformerBlock (models/attention.py, norm_type "layer_norm") and the GEGLU FeedForward: GroupNorm
// (eps 1e-6) → proj_in (1×1 conv for SD 1.x, Linear for SD 2.x's use_linear_projection) → pixels as tokens →
// blocks of [LayerNorm → self-attention, LayerNorm → cross-attention over encoder_hidden_states, LayerNorm → GEGLU
// feed-forward], each added back → proj_out → plus the input.
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' Transformer2DModel for continuous inputs: GroupNorm → proj_in (1×1 conv, or Linear with
/// use_linear_projection) → the pixels as tokens through BasicTransformerBlocks → proj_out, plus the input.</summary>
public sealed class Transformer2DModel : Module
{
    readonly GroupNorm _norm;
    readonly Module _projIn, _projOut;                      // Conv2d (1×1) or Linear
    readonly List<BasicTransformerBlock> _blocks = [];
    readonly bool _linear;
    readonly int _inner;

    /// <summary>A transformer over <paramref name="inChannels"/> channels with <paramref name="heads"/> heads of
    /// <paramref name="headDim"/>, <paramref name="layers"/> blocks, cross-attention to states of width
    /// <paramref name="crossAttentionDim"/> (null: self-attention only) and GroupNorm of <paramref name="normGroups"/> groups;
    /// weights drawn from <paramref name="rng"/>.</summary>
    public Transformer2DModel(int heads, int headDim, int inChannels, int layers, int? crossAttentionDim, int normGroups,
        bool useLinearProjection, bool onlyCrossAttention, Rng rng)
    {
        (_linear, _inner) = (useLinearProjection, heads * headDim);
        _norm = Register("norm", new GroupNorm(normGroups, inChannels, 1e-6f));
        _projIn = useLinearProjection ? Register("proj_in", new Linear(inChannels, _inner, rng)) : Register("proj_in", new Conv2d(inChannels, _inner, 1, rng));
        for (int i = 0; i < layers; i++)
            _blocks.Add(Register($"transformer_blocks.{i}", new BasicTransformerBlock(_inner, heads, headDim, crossAttentionDim, onlyCrossAttention, rng)));
        _projOut = useLinearProjection ? Register("proj_out", new Linear(_inner, inChannels, rng)) : Register("proj_out", new Conv2d(_inner, inChannels, 1, rng));
    }

    /// <summary>x: (B, C, H, W), context: (B, S, crossDim) or null → (B, C, H, W)</summary>
    public Tensor Forward(Tensor x, Tensor? context)
    {
        int b = x.Dim(0), c = x.Dim(1), hh = x.Dim(2), ww = x.Dim(3);
        var h = _norm.Forward(x);
        if (!_linear) h = ((Conv2d)_projIn).Forward(h);                       // (B, inner, H, W)
        h = h.Permute(0, 2, 3, 1).Reshape(b, hh * ww, _linear ? c : _inner); // (B, HW, ·)
        if (_linear) h = ((Linear)_projIn).Forward(h);                       // (B, HW, inner)
        foreach (var block in _blocks) h = block.Forward(h, context);
        if (_linear)
        {
            h = ((Linear)_projOut).Forward(h);                                // (B, HW, C)
            return h.Reshape(b, hh, ww, c).Permute(0, 3, 1, 2) + x;
        }
        h = h.Reshape(b, hh, ww, _inner).Permute(0, 3, 1, 2);               // (B, inner, H, W)
        return ((Conv2d)_projOut).Forward(h, residual: x);                   // x + proj_out(h)
    }
}

/// <summary>diffusers' BasicTransformerBlock (norm_type "layer_norm"): LayerNorm → self-attention, LayerNorm →
/// cross-attention, LayerNorm → GEGLU feed-forward, each added back.</summary>
public sealed class BasicTransformerBlock : Module
{
    readonly LayerNorm _norm1, _norm3;
    readonly LayerNorm? _norm2;
    readonly Attention _attn1;
    readonly Attention? _attn2;
    readonly FeedForward _ff;
    readonly bool _onlyCrossAttention;

    /// <summary>A block of width <paramref name="dim"/> with <paramref name="heads"/> heads of
    /// <paramref name="headDim"/>; cross-attention to states of width <paramref name="crossAttentionDim"/> when it is set, and
    /// with <paramref name="onlyCrossAttention"/> the first attention attends to those states too. Weights drawn from
    /// <paramref name="rng"/>.</summary>
    public BasicTransformerBlock(int dim, int heads, int headDim, int? crossAttentionDim, bool onlyCrossAttention, Rng rng)
    {
        _onlyCrossAttention = onlyCrossAttention;
        _norm1 = Register("norm1", new LayerNorm(dim));
        _attn1 = Register("attn1", Attention.Transformer(dim, onlyCrossAttention ? crossAttentionDim : null, heads, headDim, rng));
        if (crossAttentionDim is not null)
        {
            _norm2 = Register("norm2", new LayerNorm(dim));
            _attn2 = Register("attn2", Attention.Transformer(dim, crossAttentionDim, heads, headDim, rng));
        }
        _norm3 = Register("norm3", new LayerNorm(dim));
        _ff = Register("ff", new FeedForward(dim, 4 * dim, rng));
    }

    /// <summary>x: (B, L, dim), context: (B, S, crossDim) or null → (B, L, dim)</summary>
    public Tensor Forward(Tensor x, Tensor? context)
    {
        x = _attn1.Forward(_norm1.Forward(x), _onlyCrossAttention ? context : null) + x;
        if (_attn2 is not null) x = _attn2.Forward(_norm2!.Forward(x), context) + x;
        return _ff.Forward(_norm3.Forward(x)) + x;
    }
}

/// <summary>diffusers' FeedForward with activation "geglu": net.0 = GEGLU (proj: dim → 2·inner, h · gelu(gate)),
/// net.1 = dropout (0 here), net.2 = Linear(inner → dim).</summary>
public sealed class FeedForward : Module
{
    readonly Geglu _geglu;
    readonly Linear _out;

    /// <summary>diffusers' FeedForward with GEGLU: <paramref name="dim"/> → GEGLU to <paramref name="inner"/> → Linear
    /// back to dim (net.0, net.2); weights drawn from <paramref name="rng"/>.</summary>
    public FeedForward(int dim, int inner, Rng rng)
    {
        _geglu = Register("net.0", new Geglu(dim, inner, rng));
        _out = Register("net.2", new Linear(inner, dim, rng));
    }

    /// <summary>x: (…, dim) → (…, dim)</summary>
    public Tensor Forward(Tensor x) => _out.Forward(_geglu.Forward(x));
}

/// <summary>GEGLU (Shazeer 2020): proj(x) split in halves h, gate along the last axis → h · gelu(gate), exact GELU.</summary>
public sealed class Geglu : Module
{
    readonly Linear _proj;

    /// <summary>A GEGLU whose projection maps <paramref name="dim"/> to 2·<paramref name="inner"/> (value and gate
    /// halves); weights drawn from <paramref name="rng"/>.</summary>
    public Geglu(int dim, int inner, Rng rng) => _proj = Register("proj", new Linear(dim, 2 * inner, rng));

    /// <summary>x: (…, dim) → (…, inner)</summary>
    public Tensor Forward(Tensor x)
    {
        return _proj.Forward(x).Geglu();                                    // halves (…, inner) each, fused
    }
}

// diffusers' Attention with the plain AttnProcessor (models/attention_processor.py): to_q / to_k / to_v / to_out.0
// linear maps, heads split off the channel axis, softmax(q·kᵀ/√d)·v per head. Two configurations, as diffusers
// builds them: the transformer's (no bias on q, k, v; keys and values from encoder_hidden_states for cross-
// attention) and the spatial one of the VAE and UNet2DModel (bias everywhere, a GroupNorm first, the input added
// back, the sum divided by rescale_output_factor). upcast_attention / upcast_softmax change nothing here: every
// product and softmax already runs in float32.
//
// Memory: without gradients, queries are processed in blocks so that one (batch·head) item never holds more than
// ScoreBudget scores, e.g. 256 × 4,096 for a 64×64 latent instead of 4,096 × 4,096; each row's softmax is
// complete within its block, so the result is the same. With gradients the whole P is kept for the backward.
using DiffuSharp.Autograd;

namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' Attention with the plain AttnProcessor: to_q, to_k, to_v and to_out.0 linear maps and
/// softmax(q·kᵀ/√d)·v per head, in the transformer's form (self- or cross-attention) or the spatial form of the VAE and
/// UNet2DModel (GroupNorm first, residual added). Without gradients, queries run in blocks of at most
/// <see cref="ScoreBudget"/> scores.</summary>
public sealed class Attention : Module
{
    /// <summary>Most attention scores one (batch·head) item holds at once when no gradient is recorded.</summary>
    public const int ScoreBudget = 1 << 20;

    readonly Linear _toQ, _toK, _toV, _toOut;
    readonly GroupNorm? _groupNorm;
    readonly int _heads, _dimHead;
    readonly double _rescaleOutputFactor;

    Attention(int queryDim, int? crossAttentionDim, int heads, int dimHead, bool qkvBias, int? normGroups, float normEps, double rescaleOutputFactor, Rng rng)
    {
        if (heads <= 0 || dimHead <= 0) throw new ArgumentException($"Attention: heads ({heads}) and head size ({dimHead}) must be positive");
        (_heads, _dimHead, _rescaleOutputFactor) = (heads, dimHead, rescaleOutputFactor);
        int inner = heads * dimHead, kvDim = crossAttentionDim ?? queryDim;
        if (normGroups is int g) _groupNorm = Register("group_norm", new GroupNorm(g, queryDim, normEps));
        _toQ = Register("to_q", new Linear(queryDim, inner, rng, qkvBias));
        _toK = Register("to_k", new Linear(kvDim, inner, rng, qkvBias));
        _toV = Register("to_v", new Linear(kvDim, inner, rng, qkvBias));
        _toOut = Register("to_out.0", new Linear(inner, queryDim, rng));
    }

    /// <summary>The BasicTransformerBlock's attention: q, k, v without bias; keys and values of width
    /// crossAttentionDim (from the context) or queryDim (self-attention).</summary>
    public static Attention Transformer(int queryDim, int? crossAttentionDim, int heads, int dimHead, Rng rng)
        => new(queryDim, crossAttentionDim, heads, dimHead, qkvBias: false, normGroups: null, normEps: 0, rescaleOutputFactor: 1, rng);

    /// <summary>The spatial self-attention of the VAE and UNet2DModel (diffusers' _from_deprecated_attn_block):
    /// GroupNorm first (when normGroups is given), biases everywhere, residual added, divided by rescaleOutputFactor.</summary>
    public static Attention Spatial(int channels, int heads, int dimHead, int? normGroups, float normEps, double rescaleOutputFactor, Rng rng)
        => new(channels, null, heads, dimHead, qkvBias: true, normGroups, normEps, rescaleOutputFactor, rng);

    /// <summary>x: (B, L, queryDim), context: (B, S, crossDim) or null for self-attention → (B, L, queryDim).</summary>
    public Tensor Forward(Tensor x, Tensor? context = null)
    {
        if (x.Rank != 3) throw new ArgumentException($"Attention expects (B, L, C), got {ShapeUtil.Format(x.Shape)}");
        var kv = context ?? x;
        if (kv.Rank != 3 || kv.Dim(0) != x.Dim(0))
            throw new ArgumentException($"Attention: context must be (B = {x.Dim(0)}, S, C), got {ShapeUtil.Format(kv.Shape)}");
        var h = MultiHead(_toQ.Forward(x), _toK.Forward(kv), _toV.Forward(kv));   // (B, L, heads·dh)
        return _toOut.Forward(h);
    }

    /// <summary>Spatial self-attention over the pixels: x: (B, C, H, W) → (B, C, H, W) = (x + attn(norm(x))) / rescale.</summary>
    public Tensor ForwardSpatial(Tensor x)
    {
        if (x.Rank != 4) throw new ArgumentException($"Attention.ForwardSpatial expects (B, C, H, W), got {ShapeUtil.Format(x.Shape)}");
        int b = x.Dim(0), c = x.Dim(1), hh = x.Dim(2), ww = x.Dim(3);
        var flat = x.Reshape(b, c, hh * ww);                                  // (B, C, T)
        var normed = _groupNorm?.Forward(flat) ?? flat;
        var tokens = normed.Transpose(1, 2);                                  // (B, T, C)
        var h = _toOut.Forward(MultiHead(_toQ.Forward(tokens), _toK.Forward(tokens), _toV.Forward(tokens)));   // (B, T, C)
        var y = h.Transpose(1, 2).Reshape(b, c, hh, ww) + x;                  // residual_connection
        return _rescaleOutputFactor == 1.0 ? y : y / _rescaleOutputFactor;
    }

    /// <summary>q: (B, Lq, heads·dh), k, v: (B, Lk, heads·dh) → (B, Lq, heads·dh), softmax(q·kᵀ/√dh)·v per head.</summary>
    Tensor MultiHead(Tensor q, Tensor k, Tensor v)
    {
        int b = q.Dim(0), lq = q.Dim(1), lk = k.Dim(1);
        var qh = SplitHeads(q);                                               // (B, heads, Lq, dh)
        var kh = SplitHeads(k);                                               // (B, heads, Lk, dh)
        var vh = SplitHeads(v);
        float scale = (float)(1.0 / Math.Sqrt(_dimHead));
        Tensor o;                                                             // (B, heads, Lq, dh)
        if (GradMode.IsEnabled || (long)lq * lk <= ScoreBudget) o = Tensor.Attention(qh, kh, vh, scale);
        else
        {
            int rows = Math.Max(1, ScoreBudget / Math.Max(lk, 1));
            qh = qh.Contiguous(); kh = kh.Contiguous(); vh = vh.Contiguous();
            var parts = new List<Tensor>();
            for (int r0 = 0; r0 < lq; r0 += rows)
                parts.Add(Tensor.Attention(qh.Slice(2, r0, Math.Min(rows, lq - r0)), kh, vh, scale));   // (B, heads, rows, dh)
            o = parts.Count == 1 ? parts[0] : Tensor.Concat(parts, 2);
        }
        return o.Permute(0, 2, 1, 3).Reshape(b, lq, _heads * _dimHead);     // (B, Lq, heads·dh)
    }

    Tensor SplitHeads(Tensor t) => t.Reshape(t.Dim(0), t.Dim(1), _heads, _dimHead).Permute(0, 2, 1, 3);
}

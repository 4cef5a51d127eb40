// Fused scaled-dot-product attention, O = softmax(scale·Q·Kᵀ)·V (Vaswani et al. 2017, eq. 1; improved-diffusion's
// QKVAttention computes the same product, splitting the scale as √scale on each of q and k). Two batched GEMMs
// around an in-place row softmax; transposed views of q, k or v go to the GEMM as transpose flags, never copied.
// The backward keeps only the probabilities P (batch·Lq·Lk floats) besides the inputs. Each batch item runs its
// products and softmax back to back on one thread (Kernels/AttentionFused.cs). QkvAttention is the same product on
// improved-diffusion's packed (B·heads, 3·ch, T) layout, reading q, k, v and writing the output and dqkv in place.
using System.Buffers;
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>q: (…, Lq, D), k: (…, Lk, D), v: (…, Lk, Dv) with equal leading dims → (…, Lq, Dv). Causal: query i
    /// attends to keys j ≤ i only (PyTorch's is_causal, aligned at the top left).</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, float scale, bool causal = false)
    {
        string Shapes() => $"q {ShapeUtil.Format(q.ShapeSpan)}, k {ShapeUtil.Format(k.ShapeSpan)}, v {ShapeUtil.Format(v.ShapeSpan)}";
        if (q.Rank < 2 || k.Rank != q.Rank || v.Rank != q.Rank)
            throw new ArgumentException($"Attention expects q (…, Lq, D), k (…, Lk, D), v (…, Lk, Dv) of one rank ≥ 2, got {Shapes()}");
        if (!ShapeUtil.Equal(q.ShapeSpan[..^2], k.ShapeSpan[..^2]) || !ShapeUtil.Equal(q.ShapeSpan[..^2], v.ShapeSpan[..^2]))
            throw new ArgumentException($"Attention: batch dimensions differ: {Shapes()}");
        int lq = q.ShapeSpan[^2], d = q.ShapeSpan[^1], lk = k.ShapeSpan[^2], dv = v.ShapeSpan[^1];
        if (k.ShapeSpan[^1] != d)
            throw new ArgumentException($"Attention: q and k differ in head size ({d} vs {k.ShapeSpan[^1]}): {Shapes()}");
        if (v.ShapeSpan[^2] != lk)
            throw new ArgumentException($"Attention: k and v differ in length ({lk} vs {v.ShapeSpan[^2]}): {Shapes()}");
        if (!float.IsFinite(scale)) throw new ArgumentException($"Attention: scale must be finite, got {scale}");

        if (!(GradMode.IsEnabled && (q.RequiresGrad || k.RequiresGrad || v.RequiresGrad)) && lk > 0
            && SplitHeads(q) is { } hq && SplitHeads(k) is { } hk && SplitHeads(v) is { } hv)
            return AttentionOnSplitHeads(q, k, v, hq, hk, hv, scale, causal);

        var oq = AsGemmOperand(ref q);
        var ok = AsGemmOperand(ref k);
        var ov = AsGemmOperand(ref v);
        int batch = ShapeUtil.Count(q.ShapeSpan[..^2]);
        int[] outShape = [.. q.ShapeSpan[..^2], lq, dv];
        var y = Tensor.Uninitialized(outShape);                  // written by the fused kernel (cleared when Lk = 0)
        long sq = (long)lq * d, sk = (long)lk * d, sv = (long)lk * dv, sp = (long)lq * lk;
        Tensor tq = q, tk = k, tv = v;
        // P (batch, Lq, Lk) is kept for the backward only when one will run; it is rented and given back after it.
        bool save = GradMode.IsEnabled && (tq.RequiresGrad || tk.RequiresGrad || tv.RequiresGrad) && lk > 0;
        float[]? p = save ? ArrayPool<float>.Shared.Rent(checked((int)(batch * sp))) : null;
        if (y.Count > 0)
            fixed (float* pq = tq.Storage, pk = tk.Storage, pv = tv.Storage, pp = p, py = y.Data)
            {
                if (lk > 0)
                    AttentionFused.Forward(new(pq + tq.Offset, oq.Trans, oq.Ld, sq), new(pk + tk.Offset, ok.Trans, ok.Ld, sk),
                        new(pv + tv.Offset, ov.Trans, ov.Ld, sv), pp, Dense(py, lq, dv), batch, lq, lk, d, dv, scale, causal);
                else
                    y.Data.Clear();                                   // softmax over nothing: O = 0·V
            }

        return Graph.Record("Attention", y, [tq, tk, tv], dy =>
        {
            // Forward: S = scale·Q·Kᵀ, P = softmax_rows(S), O = P·V. Then
            //   dV = Pᵀ·dO;  dP = dO·Vᵀ;  dS = P⊙(dP − rowsum(dP⊙P))  (softmax Jacobian diag(p) − p·pᵀ per row);
            //   dQ = scale·dS·K;  dK = scale·dSᵀ·Q.  The scale is folded into dS once. Causal: the masked entries
            //   of P are 0, so those of dS are too, and the same products give the gradient of the masked forward.
            if (p is null) return;
            try
            {
                if (y.Count == 0) return;
                fixed (float* pq = tq.Storage, pk = tk.Storage, pv = tv.Storage, pp = p, pd = dy.Data)
                fixed (float* gq = tq.RequiresGrad ? tq.GradData() : default, gk = tk.RequiresGrad ? tk.GradData() : default)
                fixed (float* gv = tv.RequiresGrad ? tv.GradData() : default)
                    AttentionFused.Backward(new(pq + tq.Offset, oq.Trans, oq.Ld, sq), new(pk + tk.Offset, ok.Trans, ok.Ld, sk),
                        new(pv + tv.Offset, ov.Trans, ov.Ld, sv), pp, Dense(pd, lq, dv), Dense(gq, lq, d), Dense(gk, lk, d), Dense(gv, lk, dv),
                        batch, lq, lk, d, dv, scale);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(p);
                p = null;
            }
        });
    }

    /// <summary>A (B, H, L, D) operand with unit column stride whose rows are not packed item after item, as a
    /// transformer's heads are when split from (B, L, H·D) by a reshape and a permute: the operand that reads it in
    /// place (rows Ld = H·D apart, heads D apart, batch items L·H·D apart), with its storage offset; null for any
    /// other layout (a dense one goes through AsGemmOperand).</summary>
    static (AttentionOperand Operand, int Offset)? SplitHeads(Tensor t)
    {
        if (t.Rank != 4 || t.IsContiguous) return null;
        var s = t.StridesSpan;
        if (s[3] != 1 || s[2] < t.ShapeSpan[3] || s[1] <= 0 || s[0] <= 0) return null;
        return (new AttentionOperand(null, false, s[2], s[1], inner: t.ShapeSpan[1], outerStride: s[0]), t.Offset);
    }

    /// <summary>Inference on split heads (<see cref="SplitHeads"/>): q, k and v read in place, and O written as a
    /// (B, H, Lq, Dv) view of (B, Lq, H, Dv) storage, so that merging the heads back (permute, reshape) copies nothing.
    /// The same products as the dense path, so the same bits.</summary>
    static Tensor AttentionOnSplitHeads(Tensor q, Tensor k, Tensor v, (AttentionOperand Operand, int Offset) hq, (AttentionOperand Operand, int Offset) hk,
        (AttentionOperand Operand, int Offset) hv, float scale, bool causal)
    {
        int b = q.ShapeSpan[0], h = q.ShapeSpan[1], lq = q.ShapeSpan[2], d = q.ShapeSpan[3], lk = k.ShapeSpan[2], dv = v.ShapeSpan[3];
        var storage = Tensor.Uninitialized([b, lq, h, dv]);
        var y = Tensor.ViewOf(storage, storage.Offset, [b, h, lq, dv], [lq * h * dv, dv, h * dv, 1]);
        static AttentionOperand At(AttentionOperand o, float* p) => new(p, o.Trans, o.Ld, o.Stride, inner: o.Inner, outerStride: o.OuterStride);
        if (y.Count > 0)
            fixed (float* pq = q.Storage, pk = k.Storage, pv = v.Storage, py = storage.Data)
                AttentionFused.Forward(At(hq.Operand, pq + hq.Offset), At(hk.Operand, pk + hk.Offset), At(hv.Operand, pv + hv.Offset), null,
                    new AttentionOperand(py, false, h * dv, dv, inner: h, outerStride: (long)lq * h * dv), b * h, lq, lk, d, dv, scale, causal);
        return Graph.Record("Attention", y, [q, k, v], _ => throw new InvalidOperationException("split-head attention records no backward"));
    }

    /// <summary>(batch, rows, cols) row-major items.</summary>
    static AttentionOperand Dense(float* data, int rows, int cols) => new(data, false, Math.Max(cols, 1), (long)rows * cols);

    /// <summary>improved-diffusion's QKVAttention on its own layout: qkv (B, 3·heads·ch, T), seen as (B·heads, 3·ch, T)
    /// and split into q, k, v of (ch, T) each → (B, heads·ch, T), softmax over keys with logits scaled by 1/√ch.
    /// Nothing is copied: q, k, v and the output are transposed GEMM operands, and the backward writes the three
    /// gradients straight into qkv's.</summary>
    public static Tensor QkvAttention(Tensor qkv, int heads)
    {
        if (heads < 1) throw new ArgumentOutOfRangeException(nameof(heads), $"QkvAttention: heads must be at least 1, got {heads}");
        if (qkv.Rank != 3 || qkv.ShapeSpan[1] % (3 * heads) != 0)
            throw new ArgumentException($"QkvAttention expects qkv (B, 3·{heads}·ch, T), got {ShapeUtil.Format(qkv.ShapeSpan)}");
        qkv = qkv.Contiguous();
        int b = qkv.ShapeSpan[0], t = qkv.ShapeSpan[2], ch = qkv.ShapeSpan[1] / (3 * heads), batch = b * heads;
        float scale = 1f / MathF.Sqrt(ch);                   // QKVAttention scales q and k each by ch^(−1/4)
        var y = Tensor.Uninitialized([b, heads * ch, t]);     // (B, heads·ch, T)
        // item i = (batch index, head): q at i·3·ch·T, k and v ch·T and 2·ch·T further, each (T, ch) stored as (ch, T)
        long item = 3L * ch * t, part = (long)ch * t;
        AttentionOperand Part(float* data, int which) => new(data + which * part, true, Math.Max(t, 1), item);
        AttentionOperand Out(float* data) => new(data, true, Math.Max(t, 1), part);
        AttentionOperand Grad(float* data, int which, bool fresh) => new(data + which * part, true, Math.Max(t, 1), item, overwrite: fresh);
        bool save = GradMode.IsEnabled && qkv.RequiresGrad && t > 0;
        float[]? p = save ? ArrayPool<float>.Shared.Rent(checked(batch * t * t)) : null;
        if (y.Count > 0)
            fixed (float* px = qkv.Data, pp = p, py = y.Data)
            {
                if (t > 0) AttentionFused.Forward(Part(px, 0), Part(px, 1), Part(px, 2), pp, Out(py), batch, t, t, ch, ch, scale);
            }

        return Graph.Record("Attention", y, qkv, dy =>
        {
            // As Attention's backward, with dQ, dK, dV landing in their rows of dqkv.
            if (p is null) return;
            try
            {
                if (y.Count == 0) return;
                var grad = qkv.GradForWrite(out bool accumulate);    // dq, dk, dv cover all of it: a fresh one is written, not added
                fixed (float* px = qkv.Data, pp = p, pd = dy.Data, pg = grad)
                    AttentionFused.Backward(Part(px, 0), Part(px, 1), Part(px, 2), pp, Out(pd), Grad(pg, 0, !accumulate), Grad(pg, 1, !accumulate),
                        Grad(pg, 2, !accumulate), batch, t, t, ch, ch, scale);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(p);
                p = null;
            }
        });
    }
}

// Fused scaled-dot-product attention, O = softmax(scale·Q·Kᵀ)·V (Vaswani et al. 2017, eq. 1; improved-diffusion's
// QKVAttention computes the same product, splitting the scale as √scale on each of q and k). Two batched GEMMs
// around an in-place row softmax; transposed views of q, k or v go to the GEMM as transpose flags, never copied.
// The backward keeps only the probabilities P (batch·Lq·Lk floats) besides the inputs.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>q: (…, Lq, D), k: (…, Lk, D), v: (…, Lk, Dv) with equal leading dims → (…, Lq, Dv).</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
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

        var oq = AsGemmOperand(ref q);
        var ok = AsGemmOperand(ref k);
        var ov = AsGemmOperand(ref v);
        int batch = ShapeUtil.Count(q.ShapeSpan[..^2]);
        int[] outShape = [.. q.ShapeSpan[..^2], lq, dv];
        var y = Tensor.Uninitialized(outShape);                  // written by the P·V GEMM (beta = 0; cleared when Lk = 0)
        var pT = Tensor.Uninitialized([checked(batch * lq * lk)]); // P: (batch, Lq, Lk), saved for the backward
        long sq = (long)lq * d, sk = (long)lk * d, sv = (long)lk * dv, sp = (long)lq * lk, so = (long)lq * dv;
        Tensor tq = q, tk = k, tv = v;
        if (y.Count > 0)
            fixed (float* pq = tq.Storage, pk = tk.Storage, pv = tv.Storage, pp = pT.Data, py = y.Data)
            {
                float* Q = pq + tq.Offset, K = pk + tk.Offset, V = pv + tv.Offset;
                if (lk > 0)
                {
                    // S = Q·Kᵀ (batch, Lq, Lk); P = softmax(scale·S) in place; O = P·V (batch, Lq, Dv)
                    Gemm.SgemmBatched(batch, oq.Trans, !ok.Trans, lq, lk, d, Q, oq.Ld, sq, K, ok.Ld, sk, 0f, pp, lk, sp);
                    AttentionSoftmax.Forward(pp, batch * lq, lk, scale);
                }
                Gemm.SgemmBatched(batch, false, ov.Trans, lq, dv, lk, pp, Math.Max(lk, 1), sp, V, ov.Ld, sv, 0f, py, dv, so);
            }

        return Graph.Record("Attention", y, [tq, tk, tv], dy =>
        {
            // Forward: S = scale·Q·Kᵀ, P = softmax_rows(S), O = P·V. Then
            //   dV = Pᵀ·dO;  dP = dO·Vᵀ;  dS = P⊙(dP − rowsum(dP⊙P))  (softmax Jacobian diag(p) − p·pᵀ per row);
            //   dQ = scale·dS·K;  dK = scale·dSᵀ·Q.  The scale is folded into dS once.
            if (y.Count == 0 || lk == 0) return;
            fixed (float* pq = tq.Storage, pk = tk.Storage, pv = tv.Storage, pp = pT.Data, pd = dy.Data)
            {
                float* Q = pq + tq.Offset, K = pk + tk.Offset, V = pv + tv.Offset;
                if (tv.RequiresGrad)
                    fixed (float* gv = tv.GradData())
                        Gemm.SgemmBatched(batch, true, false, lk, dv, lq, pp, lk, sp, pd, dv, so, 1f, gv, dv, sv);
                if (!tq.RequiresGrad && !tk.RequiresGrad) return;
                var dsT = Tensor.Uninitialized([pT.Count]);        // dS, written by a beta = 0 GEMM; a temporary
                fixed (float* pds = dsT.Data)
                {
                    Gemm.SgemmBatched(batch, false, !ov.Trans, lq, lk, dv, pd, dv, so, V, ov.Ld, sv, 0f, pds, lk, sp);
                    AttentionSoftmax.Backward(pp, pds, batch * lq, lk, scale);
                    if (tq.RequiresGrad)
                        fixed (float* gq = tq.GradData())
                            Gemm.SgemmBatched(batch, false, ok.Trans, lq, d, lk, pds, lk, sp, K, ok.Ld, sk, 1f, gq, d, sq);
                    if (tk.RequiresGrad)
                        fixed (float* gk = tk.GradData())
                            Gemm.SgemmBatched(batch, true, oq.Trans, lk, d, lq, pds, lk, sp, Q, oq.Ld, sq, 1f, gk, d, sk);
                }
                dsT.ReleaseScratch();
            }
        });
    }
}

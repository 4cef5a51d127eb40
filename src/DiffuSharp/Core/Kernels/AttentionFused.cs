// Scaled-dot-product attention one batch item at a time: S = Q·Kᵀ, P = softmax(scale·S), O = P·V for an item run
// back to back on one thread, so its Lq×Lk scores stay in L2 between the two products and the softmax, and the
// backward's five products and softmax backward likewise. Items go to threads one at a time through a shared
// counter: a thread that starts late or shares its core with another process simply takes fewer, and the whole op
// is one parallel loop rather than one per product. Each item's products are the same GEMMs the batched call would
// run, so the bits do not depend on the thread count. Every operand, the output and the gradients included, may be
// stored transposed with any row and item stride: improved-diffusion's (B·heads, 3·ch, T) qkv layout is read and its
// gradient written in place, with the transposes folded into the GEMM flags.
using System.Buffers;

namespace DiffuSharp.Kernels;

/// <summary>One operand of the attention products: (rows, cols) per item, transposed in memory when Trans, row
/// stride Ld, items Stride floats apart. A gradient is added to unless Overwrite (a fresh buffer, written whole).</summary>
internal readonly unsafe struct AttentionOperand(float* data, bool trans, int ld, long stride, bool overwrite = false)
{
    public readonly float* Data = data;
    public readonly bool Trans = trans;
    public readonly int Ld = ld;
    public readonly long Stride = stride;
    public readonly bool Overwrite = overwrite;

    /// <summary>beta of a product into this operand as a gradient.</summary>
    public float Beta => Overwrite ? 0f : 1f;
}

internal static unsafe class AttentionFused
{
    /// <summary>O (Lq, Dv) = softmax(scale·Q·Kᵀ)·V per item, with q (Lq, D), k (Lk, D), v (Lk, Dv); P (batch, Lq, Lk)
    /// receives the probabilities when not null (kept for the backward). Causal: query i sees keys j ≤ i only (the
    /// softmax runs over the first i + 1 scores of its row, the rest of the row is exactly 0).</summary>
    public static void Forward(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, AttentionOperand o,
        int batch, int lq, int lk, int d, int dv, float scale, bool causal = false)
    {
        int next = 0;
        var work = new ForwardWork(q, k, v, p, o, lq, lk, d, dv, scale, causal, batch, &next);
        ParallelFor.RunRange(Math.Min(batch, Parallelism.MaxThreads), work);
    }

    /// <summary>Backward of <see cref="Forward"/> from dO (Lq, Dv) per item and the saved P: dV += Pᵀ·dO,
    /// dS = scale·P⊙(dO·Vᵀ − rowsum(dO·Vᵀ⊙P)), dQ += dS·K, dK += dSᵀ·Q (each gradient skipped when its Data is
    /// null, written instead of added when Overwrite; they have the shapes of q, k and v). A causal forward needs
    /// nothing more: its masked probabilities are exact zeros, so their dS entries are zero too.</summary>
    public static void Backward(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, AttentionOperand dO,
        AttentionOperand dq, AttentionOperand dk, AttentionOperand dvOut, int batch, int lq, int lk, int d, int dv, float scale)
    {
        int next = 0;
        var work = new BackwardWork(q, k, v, p, dO, dq, dk, dvOut, lq, lk, d, dv, scale, batch, &next);
        ParallelFor.RunRange(Math.Min(batch, Parallelism.MaxThreads), work);
    }

    /// <summary>C (m, n) of item i = op(A)·op(B) + beta·C. A C stored transposed is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ.</summary>
    static void Product(AttentionOperand c, long i, bool transA, bool transB, int m, int n, int k,
        float* a, int lda, float* b, int ldb, float beta)
    {
        float* pc = c.Data + i * c.Stride;
        if (!c.Trans) Gemm.Sgemm(transA, transB, m, n, k, a, lda, b, ldb, beta, pc, c.Ld);
        else Gemm.Sgemm(!transB, !transA, n, m, k, b, ldb, a, lda, beta, pc, c.Ld);
    }

    readonly struct ForwardWork(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, AttentionOperand o,
        int lq, int lk, int d, int dv, float scale, bool causal, int count, int* next) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            long sp = (long)lq * lk;
            float[]? scratch = p == null ? ArrayPool<float>.Shared.Rent((int)Math.Max(1, sp)) : null;
            try
            {
                fixed (float* ps = scratch)
                    for (int i; (i = Interlocked.Increment(ref *next) - 1) < count;)
                    {
                        float* s = p == null ? ps : p + i * sp;
                        // S = Q·Kᵀ (Lq, Lk); P = softmax(scale·S) in place; O = P·V (Lq, Dv)
                        Gemm.Sgemm(q.Trans, !k.Trans, lq, lk, d, q.Data + i * q.Stride, q.Ld, k.Data + i * k.Stride, k.Ld, 0f, s, lk);
                        if (!causal) AttentionSoftmax.ForwardRows(s, 0, lq, lk, scale);
                        else CausalSoftmax(s, lq, lk, scale);
                        Product(o, i, false, v.Trans, lq, dv, lk, s, lk, v.Data + i * v.Stride, v.Ld, 0f);
                    }
            }
            finally
            {
                if (scratch is not null) ArrayPool<float>.Shared.Return(scratch);
            }
        }
    }

    /// <summary>Row r of s (Lq, Lk) ← softmax over its first min(r + 1, Lk) scaled entries, zeros after them.</summary>
    static void CausalSoftmax(float* s, int lq, int lk, float scale)
    {
        for (int r = 0; r < lq; r++)
        {
            float* row = s + (long)r * lk;
            int seen = Math.Min(r + 1, lk);
            AttentionSoftmax.ForwardRows(row, 0, 1, seen, scale);
            new Span<float>(row + seen, lk - seen).Clear();
        }
    }

    /// <summary>Scalar reference of the causal forward for one item: q (Lq, D), k (Lk, D), v (Lk, Dv) row-major,
    /// o (Lq, Dv) = Σ_{j ≤ i} softmax_j(scale·q_i·k_j)·v_j, in double.</summary>
    internal static void CausalReference(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> o,
        int lq, int lk, int d, int dv, float scale)
    {
        var w = new double[lk];
        for (int i = 0; i < lq; i++)
        {
            int seen = Math.Min(i + 1, lk);
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < seen; j++)
            {
                double dot = 0;
                for (int c = 0; c < d; c++) dot += (double)q[i * d + c] * k[j * d + c];
                w[j] = scale * dot;
                max = Math.Max(max, w[j]);
            }
            for (int j = 0; j < seen; j++) sum += w[j] = Math.Exp(w[j] - max);
            for (int c = 0; c < dv; c++)
            {
                double acc = 0;
                for (int j = 0; j < seen; j++) acc += w[j] * v[j * dv + c];
                o[i * dv + c] = (float)(acc / sum);
            }
        }
    }

    readonly struct BackwardWork(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, AttentionOperand dO,
        AttentionOperand dq, AttentionOperand dk, AttentionOperand dvOut, int lq, int lk, int d, int dv, float scale, int count, int* next) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            long sp = (long)lq * lk;
            bool needS = dq.Data != null || dk.Data != null;
            float[]? scratch = needS ? ArrayPool<float>.Shared.Rent((int)Math.Max(1, sp)) : null;
            try
            {
                fixed (float* ds = scratch)
                    for (int i; (i = Interlocked.Increment(ref *next) - 1) < count;)
                    {
                        float* pi = p + i * sp, doi = dO.Data + i * dO.Stride;
                        if (dvOut.Data != null)     // dV (Lk, Dv) += Pᵀ (Lk, Lq) · dO (Lq, Dv)
                            Product(dvOut, i, true, dO.Trans, lk, dv, lq, pi, lk, doi, dO.Ld, dvOut.Beta);
                        if (!needS) continue;
                        // dP (Lq, Lk) = dO (Lq, Dv) · Vᵀ (Dv, Lk), then dS in place
                        Gemm.Sgemm(dO.Trans, !v.Trans, lq, lk, dv, doi, dO.Ld, v.Data + i * v.Stride, v.Ld, 0f, ds, lk);
                        AttentionSoftmax.BackwardRows(pi, ds, 0, lq, lk, scale);
                        if (dq.Data != null)        // dQ (Lq, D) += dS (Lq, Lk) · K (Lk, D)
                            Product(dq, i, false, k.Trans, lq, d, lk, ds, lk, k.Data + i * k.Stride, k.Ld, dq.Beta);
                        if (dk.Data != null)        // dK (Lk, D) += dSᵀ (Lk, Lq) · Q (Lq, D)
                            Product(dk, i, true, q.Trans, lk, d, lq, ds, lk, q.Data + i * q.Stride, q.Ld, dk.Beta);
                    }
            }
            finally
            {
                if (scratch is not null) ArrayPool<float>.Shared.Return(scratch);
            }
        }
    }
}

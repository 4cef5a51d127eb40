// Scaled-dot-product attention one batch item at a time: S = Q·Kᵀ, P = softmax(scale·S), O = P·V for an item run
// back to back on one thread, so its Lq×Lk scores stay in L2 between the two products and the softmax, and the
// backward's five products and softmax backward likewise. Items go to threads one at a time through a shared
// counter: a thread that starts late or shares its core with another process simply takes fewer, and the whole op
// is one parallel loop rather than one per product. Each item's products are the same GEMMs the batched call would
// run, so the bits do not depend on the thread count.
using System.Buffers;

namespace DiffuSharp.Kernels;

/// <summary>One operand of the attention products: (rows, cols) per item, transposed in memory when Trans, row
/// stride Ld, items Stride floats apart.</summary>
internal readonly unsafe struct AttentionOperand(float* data, bool trans, int ld, long stride)
{
    public readonly float* Data = data;
    public readonly bool Trans = trans;
    public readonly int Ld = ld;
    public readonly long Stride = stride;
}

internal static unsafe class AttentionFused
{
    /// <summary>O (batch, Lq, Dv) = softmax(scale·Q·Kᵀ)·V with q (Lq, D), k (Lk, D), v (Lk, Dv) per item; P
    /// (batch, Lq, Lk) receives the probabilities when not null (kept for the backward).</summary>
    public static void Forward(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, float* o,
        int batch, int lq, int lk, int d, int dv, float scale)
    {
        int next = 0;
        var work = new ForwardWork(q, k, v, p, o, lq, lk, d, dv, scale, batch, &next);
        ParallelFor.RunRange(Math.Min(batch, Parallelism.MaxThreads), work);
    }

    /// <summary>Backward of <see cref="Forward"/> from dO (batch, Lq, Dv) and the saved P: dV += Pᵀ·dO,
    /// dS = scale·P⊙(dO·Vᵀ − rowsum(dO·Vᵀ⊙P)), dQ += dS·K, dK += dSᵀ·Q (each gradient skipped when null; the
    /// gradients are contiguous (batch, rows, cols)).</summary>
    public static void Backward(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, float* dO,
        float* dq, float* dk, float* dvOut, int batch, int lq, int lk, int d, int dv, float scale)
    {
        int next = 0;
        var work = new BackwardWork(q, k, v, p, dO, dq, dk, dvOut, lq, lk, d, dv, scale, batch, &next);
        ParallelFor.RunRange(Math.Min(batch, Parallelism.MaxThreads), work);
    }

    readonly struct ForwardWork(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, float* o,
        int lq, int lk, int d, int dv, float scale, int count, int* next) : IRangeWorkItem
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
                        AttentionSoftmax.ForwardRows(s, 0, lq, lk, scale);
                        Gemm.Sgemm(false, v.Trans, lq, dv, lk, s, lk, v.Data + i * v.Stride, v.Ld, 0f, o + i * (long)lq * dv, dv);
                    }
            }
            finally
            {
                if (scratch is not null) ArrayPool<float>.Shared.Return(scratch);
            }
        }
    }

    readonly struct BackwardWork(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, float* dO,
        float* dq, float* dk, float* dvOut, int lq, int lk, int d, int dv, float scale, int count, int* next) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            long sp = (long)lq * lk;
            bool needS = dq != null || dk != null;
            float[]? scratch = needS ? ArrayPool<float>.Shared.Rent((int)Math.Max(1, sp)) : null;
            try
            {
                fixed (float* ds = scratch)
                    for (int i; (i = Interlocked.Increment(ref *next) - 1) < count;)
                    {
                        float* pi = p + i * sp, doi = dO + i * (long)lq * dv;
                        if (dvOut != null)      // dV (Lk, Dv) += Pᵀ (Lk, Lq) · dO (Lq, Dv)
                            Gemm.Sgemm(true, false, lk, dv, lq, pi, lk, doi, dv, 1f, dvOut + i * (long)lk * dv, dv);
                        if (!needS) continue;
                        // dP (Lq, Lk) = dO (Lq, Dv) · Vᵀ (Dv, Lk), then dS in place
                        Gemm.Sgemm(false, !v.Trans, lq, lk, dv, doi, dv, v.Data + i * v.Stride, v.Ld, 0f, ds, lk);
                        AttentionSoftmax.BackwardRows(pi, ds, 0, lq, lk, scale);
                        if (dq != null)         // dQ (Lq, D) += dS (Lq, Lk) · K (Lk, D)
                            Gemm.Sgemm(false, k.Trans, lq, d, lk, ds, lk, k.Data + i * k.Stride, k.Ld, 1f, dq + i * (long)lq * d, d);
                        if (dk != null)         // dK (Lk, D) += dSᵀ (Lk, Lq) · Q (Lq, D)
                            Gemm.Sgemm(true, q.Trans, lk, d, lq, ds, lk, q.Data + i * q.Stride, q.Ld, 1f, dk + i * (long)lk * d, d);
                    }
            }
            finally
            {
                if (scratch is not null) ArrayPool<float>.Shared.Return(scratch);
            }
        }
    }
}

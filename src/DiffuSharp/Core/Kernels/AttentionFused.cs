// Scaled-dot-product attention one block of query rows at a time: S = Q·Kᵀ, P = softmax(scale·S), O = P·V for a
// block run back to back on one thread, so its rows of scores (at most BlockFloats) stay in cache between the two
// products and the softmax; the backward runs one whole item at a time, its five products and softmax backward
// likewise. Blocks (and backward items) go to threads one at a time through a shared counter: a thread that starts
// late or shares its core with another process simply takes fewer, and the whole op is one parallel loop rather than
// one per product. Each block's products are the same GEMMs the whole item's would run (a GEMM's bits do not depend on
// how many rows share it), so the bits depend neither on the thread count nor on the blocking. Every operand, the
// output and the gradients included, may be stored transposed with any row and item stride: improved-diffusion's
// (B·heads, 3·ch, T) qkv layout is read and its gradient written in place, with the transposes folded into the GEMM
// flags.
using System.Buffers;

namespace DiffuSharp.Kernels;

/// <summary>One operand of the attention products: (rows, cols) per item, transposed in memory when Trans, row
/// stride Ld, items Stride floats apart. A gradient is added to unless Overwrite (a fresh buffer, written whole).
/// With Inner > 0 the items are in groups of Inner (heads within a batch item): item i is at
/// (i / Inner)·OuterStride + (i % Inner)·Stride, so (B, H, L, D) views of (B, L, H, D) storage are read in place.</summary>
internal readonly unsafe struct AttentionOperand(float* data, bool trans, int ld, long stride, bool overwrite = false, int inner = 0, long outerStride = 0)
{
    public readonly float* Data = data;
    public readonly bool Trans = trans;
    public readonly int Ld = ld;
    public readonly long Stride = stride;
    public readonly bool Overwrite = overwrite;
    public readonly int Inner = inner;
    public readonly long OuterStride = outerStride;

    /// <summary>beta of a product into this operand as a gradient.</summary>
    public float Beta => Overwrite ? 0f : 1f;

    /// <summary>The first element of item <paramref name="i"/>.</summary>
    public float* Item(long i) => Inner > 0 ? Data + i / Inner * OuterStride + i % Inner * Stride : Data + i * Stride;
}

internal static unsafe class AttentionFused
{
    /// <summary>O (Lq, Dv) = softmax(scale·Q·Kᵀ)·V per item, with q (Lq, D), k (Lk, D), v (Lk, Dv); P (batch, Lq, Lk)
    /// receives the probabilities when not null (kept for the backward). Causal: query i sees keys j ≤ i only (the
    /// softmax runs over the first i + 1 scores of its row, the rest of the row is exactly 0).</summary>
    public static void Forward(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, AttentionOperand o,
        int batch, int lq, int lk, int d, int dv, float scale, bool causal = false)
    {
        int rows = causal ? CausalBlockRows(lq, lk) : BlockRows(lq, lk), blocks = (lq + rows - 1) / rows, next = 0;
        var work = new ForwardWork(q, k, v, p, o, lq, lk, d, dv, scale, causal, rows, blocks, batch, &next);
        ParallelFor.RunRange(Math.Min(batch * blocks, Parallelism.MaxThreads), work);
    }

    /// <summary>Floats of one block's scores (2 MB): a block of query rows runs its three steps (S = Q·Kᵀ, the softmax,
    /// O = P·V) while its S is still in cache, where SD 1.5's 4096 × 4096 scores per head (64 MB) went to memory and
    /// back three times (one thread, 16 heads of 4096 × 40: 54 GFLOP/s).</summary>
    internal static int BlockFloats => KernelSwitches.Current.AttentionBlockFloats;

    /// <summary>Query rows per block: whole multiples of 32 within BlockFloats (at least 32), or all of them.</summary>
    internal static int BlockRows(int lq, int lk)
    {
        int rows = Math.Max(32, BlockFloats / Math.Max(1, lk) / 32 * 32);
        return rows >= lq ? Math.Max(1, lq) : rows;
    }

    /// <summary>Causal query rows per block: at most 32, so that a block's products stop at its last row's keys (the
    /// keys after them are masked for every row of the block). CLIP's 77 tokens run in blocks of 32, 32 and 13 rows over
    /// 32, 64 and 77 keys: 69% of the whole square's work.</summary>
    internal static int CausalBlockRows(int lq, int lk) => Math.Min(BlockRows(lq, lk), 32);

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
        float* pc = c.Item(i);
        if (!c.Trans) Gemm.Sgemm(transA, transB, m, n, k, a, lda, b, ldb, beta, pc, c.Ld);
        else Gemm.Sgemm(!transB, !transA, n, m, k, b, ldb, a, lda, beta, pc, c.Ld);
    }

    readonly struct ForwardWork(AttentionOperand q, AttentionOperand k, AttentionOperand v, float* p, AttentionOperand o,
        int lq, int lk, int d, int dv, float scale, bool causal, int rows, int blocks, int count, int* next) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            long sp = (long)lq * lk;
            // O's block is made transposed (Oᵀ = Vᵀ·Pᵀ, dv × rows) when dv is not a whole number of the kernels' 32
            // columns (SD 1.5's heads of 40 and 80): dv then runs down the kernels' rows, which tile 8 at a time, where
            // 40 columns padded to 64. The same dot products in the same order, so the same bits.
            bool transposeO = dv % 32 != 0 && !o.Trans;
            float[]? scratch = p == null ? ArrayPool<float>.Shared.Rent((int)Math.Max(1, (long)rows * lk)) : null;
            float[]? ot = transposeO ? ArrayPool<float>.Shared.Rent(rows * dv) : null;
            try
            {
                fixed (float* ps = scratch, pt = ot)
                    for (int t; (t = Interlocked.Increment(ref *next) - 1) < count * blocks;)
                    {
                        int i = t / blocks, r0 = t % blocks * rows, m = Math.Min(rows, lq - r0);
                        float* s = p == null ? ps : p + i * sp + (long)r0 * lk;
                        float* qi = q.Item(i) + (q.Trans ? r0 : (long)r0 * q.Ld);
                        float* vi = v.Item(i);
                        // S = Q·Kᵀ (m, Lk); P = softmax(scale·S) in place; O = P·V (m, Dv). Causal: only the first kk keys,
                        // those the block's last row sees; the rest of each row of P is 0 (written by the softmax).
                        int kk = causal ? Math.Min(lk, r0 + m) : lk;
                        Gemm.Sgemm(q.Trans, !k.Trans, m, kk, d, qi, q.Ld, k.Item(i), k.Ld, 0f, s, lk);
                        if (!causal) AttentionSoftmax.ForwardRows(s, 0, m, lk, scale);
                        else CausalSoftmax(s, r0, m, lk, scale);
                        float* oi = o.Item(i) + (o.Trans ? r0 : (long)r0 * o.Ld);
                        if (o.Trans) Gemm.Sgemm(!v.Trans, true, dv, m, kk, vi, v.Ld, s, lk, 0f, oi, o.Ld);
                        else if (!transposeO) Gemm.Sgemm(false, v.Trans, m, dv, kk, s, lk, vi, v.Ld, 0f, oi, o.Ld);
                        else
                        {
                            Gemm.Sgemm(!v.Trans, true, dv, m, kk, vi, v.Ld, s, lk, 0f, pt, m);     // Oᵀ (dv, m)
                            for (int r = 0; r < m; r++)
                                for (int c = 0; c < dv; c++) oi[(long)r * o.Ld + c] = pt[c * m + r];
                        }
                    }
            }
            finally
            {
                if (scratch is not null) ArrayPool<float>.Shared.Return(scratch);
                if (ot is not null) ArrayPool<float>.Shared.Return(ot);
            }
        }
    }

    /// <summary>Row r of s (m rows of queries r0 …, Lk) ← softmax over the first min(r0 + r + 1, Lk) scaled entries,
    /// zeros after them.</summary>
    static void CausalSoftmax(float* s, int r0, int m, int lk, float scale)
    {
        for (int r = 0; r < m; r++)
        {
            float* row = s + (long)r * lk;
            int seen = Math.Min(r0 + r + 1, lk);
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
                        float* pi = p + i * sp, doi = dO.Item(i);
                        if (dvOut.Data != null)     // dV (Lk, Dv) += Pᵀ (Lk, Lq) · dO (Lq, Dv)
                            Product(dvOut, i, true, dO.Trans, lk, dv, lq, pi, lk, doi, dO.Ld, dvOut.Beta);
                        if (!needS) continue;
                        // dP (Lq, Lk) = dO (Lq, Dv) · Vᵀ (Dv, Lk), then dS in place
                        Gemm.Sgemm(dO.Trans, !v.Trans, lq, lk, dv, doi, dO.Ld, v.Item(i), v.Ld, 0f, ds, lk);
                        AttentionSoftmax.BackwardRows(pi, ds, 0, lq, lk, scale);
                        if (dq.Data != null)        // dQ (Lq, D) += dS (Lq, Lk) · K (Lk, D)
                            Product(dq, i, false, k.Trans, lq, d, lk, ds, lk, k.Item(i), k.Ld, dq.Beta);
                        if (dk.Data != null)        // dK (Lk, D) += dSᵀ (Lk, Lq) · Q (Lq, D)
                            Product(dk, i, true, q.Trans, lk, d, lq, ds, lk, q.Item(i), q.Ld, dk.Beta);
                    }
            }
            finally
            {
                if (scratch is not null) ArrayPool<float>.Shared.Return(scratch);
            }
        }
    }
}

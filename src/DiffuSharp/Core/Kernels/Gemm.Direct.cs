// GEMM without packing, for tiny products and for very few rows of C (GEMV-like shapes such as a Linear layer at
// batch 1), where packing B and padding A to MR rows cost more than the multiply. It reads op(B)'s rows in place
// (a transposed B is first transposed into scratch, one K block at a time) and computes every element with the
// same K blocks and FMA chains as the packed path, so both paths give identical bits.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DiffuSharp.Kernels;

public static unsafe partial class Gemm
{
    /// <summary>Products with fewer multiply-adds than this skip packing.</summary>
    internal const long DirectWork = 32 * 1024;

    /// <summary>Rows of C at or below which the direct path is used whatever the size.</summary>
    internal const int DirectMaxRows = 4;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Direct(in Operands g, Blocking blocking)
    {
        int m = g.M, n = g.N, k = g.K;
        int kBlocks = KBlockCount(k, blocking);
        int kcMax = (k + kBlocks - 1) / kBlocks;
        int ncMax = Math.Min(n, Math.Max(32, blocking.NC));            // column chunks keep a B block in L2 for all rows
        float* bt = g.TransB ? Scratch(ref t_packB, ref t_capB, (nuint)((long)kcMax * ncMax)) : null;
        nint aStep = g.TransA ? g.Lda : 1;
        for (int jc = 0; jc < n; jc += ncMax)
        {
            int nc = Math.Min(ncMax, n - jc);
            for (int e = 0; e < g.KCount; e++)
            {
                float* pieceA = g.PieceA(e), pieceB = g.PieceB(e);
                for (int kb = 0; kb < kBlocks; kb++)
                {
                    var (p0, kc) = KBlock(k, kBlocks, kb);
                    bool accumulate = g.Accumulate || e > 0 || kb > 0;     // pieces after the first add to C
                    // b: op(B)[p0..p0+kc, jc..jc+nc) as kc rows ldb apart.
                    float* b = pieceB + p0 * g.Ldb + jc;
                    nint ldb = g.Ldb;
                    if (g.TransB)
                    {
                        TransposeBlock(pieceB + jc * g.Ldb + p0, g.Ldb, nc, kc, bt);
                        b = bt;
                        ldb = nc;
                    }
                    for (int i = 0; i < m; i++)
                    {
                        float* a = g.TransA ? pieceA + p0 * g.Lda + i : pieceA + i * g.Lda + p0;   // op(A)[i, p0 + p] = a[p·aStep]
                        DirectRow(kc, a, aStep, b, ldb, nc, g.C + i * g.Ldc + jc, accumulate);
                    }
                }
            }
        }
    }

    /// <summary>c[0..n) (+)= Σ_p a[p·aStep]·b[p·ldb + j]: one row of C over one K block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DirectRow(int kc, float* a, nint aStep, float* b, nint ldb, int n, float* c, bool accumulate)
    {
        int j = 0;
        for (; j + 32 <= n; j += 32)
        {
            Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default;
            float* bp = b + j, ap = a;
            for (int p = 0; p < kc; p++, bp += ldb, ap += aStep)
            {
                var av = Vector256.Create(*ap);
                c0 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp), c0);
                c1 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 8), c1);
                c2 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 16), c2);
                c3 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 24), c3);
            }
            Store2(c + j, c0, c1, accumulate);
            Store2(c + j + 16, c2, c3, accumulate);
        }
        for (; j + 8 <= n; j += 8)
        {
            Vector256<float> c0 = default;
            float* bp = b + j, ap = a;
            for (int p = 0; p < kc; p++, bp += ldb, ap += aStep)
                c0 = Vector256.FusedMultiplyAdd(Vector256.Create(*ap), Vector256.Load(bp), c0);
            if (accumulate) c0 = Vector256.Load(c + j) + c0;
            c0.Store(c + j);
        }
        for (; j < n; j++)
        {
            float acc = 0;                          // a scalar FMA rounds exactly like one vector lane
            float* bp = b + j, ap = a;
            for (int p = 0; p < kc; p++, bp += ldb, ap += aStep)
                acc = MathF.FusedMultiplyAdd(*ap, *bp, acc);
            c[j] = accumulate ? c[j] + acc : acc;
        }
    }

    /// <summary>dst (kc × n, row-major) = transpose of src (n × kc, row stride lds).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TransposeBlock(float* src, nint lds, int n, int kc, float* dst)
    {
        // 8 k rows of dst at a time, so dst is written in long contiguous runs and each src line is read twice at most.
        int p = 0;
        if (System.Runtime.Intrinsics.X86.Avx.IsSupported)
            for (; p + 8 <= kc; p += 8)
            {
                int j = 0;
                for (; j + 8 <= n; j += 8)
                    Transpose8x8(src + j * lds + p, lds, 8, dst + (nint)p * n + j, n);
                for (; j < n; j++)
                    for (int q = 0; q < 8; q++) dst[(nint)(p + q) * n + j] = src[j * lds + p + q];
            }
        for (; p < kc; p++)
            for (int j = 0; j < n; j++) dst[(nint)p * n + j] = src[j * lds + p];
    }
}

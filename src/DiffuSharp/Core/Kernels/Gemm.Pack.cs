// GEMM packing: copies a block of op(A) into MR-row panels and a block of op(B) into NR-column slivers, both
// k-major (element (r, p) of a panel at p·MR + r), zero-padding the ragged last panel/sliver so the microkernels
// always run full tiles. Per-thread destination buffers are 64-byte aligned and kept for the thread's lifetime.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

public static unsafe partial class Gemm
{
    [ThreadStatic] static float* t_packA;
    [ThreadStatic] static nuint t_capA;
    [ThreadStatic] static float* t_packB;
    [ThreadStatic] static nuint t_capB;

    static float* Scratch(ref float* buffer, ref nuint capacity, nuint floats)
    {
        if (capacity < floats)
        {
            floats = (floats + 16383) & ~(nuint)16383;                  // grow in 64 KiB steps
            NativeMemory.AlignedFree(buffer);
            buffer = null;
            buffer = (float*)NativeMemory.AlignedAlloc(floats * sizeof(float), 64);
            capacity = floats;
        }
        return buffer;
    }

    /// <summary>Floats a packing routine may write past the end of its panels (overlapping 8-wide stores).</summary>
    const int PackSlack = 8;

    /// <summary>dst: ⌈mc/MR⌉ panels of kc × MR = op(A)[i0.., p0..p0+kc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackA<TK>(bool transA, float* a, nint lda, int i0, int mc, int p0, int kc, float* dst) where TK : struct, IMicroKernel
    {
        int mr = TK.MR;
        for (int ir = 0; ir < mc; ir += mr, dst += (nint)mr * kc)
        {
            int rows = Math.Min(mr, mc - ir);
            int p = 0;
            if (transA)
            {
                // op(A)[i, p] = A[p, i]: each k step is a contiguous run of `rows` floats.
                float* src = a + (nint)p0 * lda + i0 + ir;
                if (rows == mr && mr == 8)
                    for (; p < kc; p++)
                        Vector256.Store(Vector256.Load(src + p * lda), dst + (nint)p * 8);
                for (; p < kc; p++)
                {
                    float* d = dst + (nint)p * mr, s = src + p * lda;
                    int r = 0;
                    for (; r < rows; r++) d[r] = s[r];
                    for (; r < mr; r++) d[r] = 0;
                }
            }
            else
            {
                float* src = a + (nint)(i0 + ir) * lda + p0;
                // Full panels: 8 k steps at a time by an 8×8 transpose of `mr` rows; its 8-wide stores at stride mr
                // overlap (each fixed by the next) and the last may spill PackSlack floats into the next panel or slack.
                if (rows == mr && mr <= 8 && Avx.IsSupported)
                    for (; p + 8 <= kc; p += 8)
                        Transpose8x8(src + p, lda, mr, dst + (nint)p * mr, mr);
                if (rows == mr && mr == 12 && Avx.IsSupported)
                    for (; p + 8 <= kc; p += 8)
                    {
                        // rows 8..11 first (their junk lanes spill into the next k step's rows 0..3), then rows 0..7
                        Transpose8x8(src + 8 * lda + p, lda, 4, dst + (nint)p * 12 + 8, 12);
                        Transpose8x8(src + p, lda, 8, dst + (nint)p * 12, 12);
                    }
                for (; p < kc; p++)
                {
                    float* d = dst + (nint)p * mr;
                    int r = 0;
                    for (; r < rows; r++) d[r] = src[r * lda + p];
                    for (; r < mr; r++) d[r] = 0;
                }
            }
        }
    }

    /// <summary>dst: ⌈nc/NR⌉ slivers of kc × NR = op(B)[p0..p0+kc, j0..j0+nc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackB<TK>(bool transB, float* b, nint ldb, int p0, int kc, int j0, int nc, float* dst) where TK : struct, IMicroKernel
    {
        int nr = TK.NR;
        nint sliver = (nint)nr * kc;
        if (!transB)
        {
            // Row-wise: each k step copies one long contiguous row segment into all slivers.
            int full = nc / nr, rest = nc - full * nr;
            float* src = b + (nint)p0 * ldb + j0;
            for (int p = 0; p < kc; p++, src += ldb)
            {
                float* d = dst + (nint)p * nr;
                float* s = src;
                if (nr % 16 == 0 && Vector512.IsHardwareAccelerated)
                    for (int t = 0; t < full; t++, s += nr, d += sliver)
                        for (int v = 0; v < nr; v += 16)
                            Vector512.Store(Vector512.Load(s + v), d + v);
                else
                    for (int t = 0; t < full; t++, s += nr, d += sliver)
                        for (int v = 0; v < nr; v += 8)
                            Vector256.Store(Vector256.Load(s + v), d + v);
                if (rest > 0)
                {
                    int q = 0;
                    for (; q < rest; q++) d[q] = s[q];
                    for (; q < nr; q++) d[q] = 0;
                }
            }
            return;
        }

        // op(B)[p, j] = B[j, p]: 8×8 AVX transposes of B's rows into the sliver (the portable API has no
        // two-vector shuffle; without AVX every column takes the scalar loop below).
        for (int jr = 0; jr < nc; jr += nr, dst += sliver)
        {
            int cols = Math.Min(nr, nc - jr);
            float* src = b + (nint)(j0 + jr) * ldb + p0;
            int c0 = 0;
            for (; Avx.IsSupported && c0 + 8 <= cols; c0 += 8)
            {
                float* s = src + (nint)c0 * ldb;
                int p = 0;
                for (; p + 8 <= kc; p += 8)
                    Transpose8x8(s + p, ldb, 8, dst + (nint)p * nr + c0, nr);
                for (; p < kc; p++)
                    for (int q = 0; q < 8; q++) dst[(nint)p * nr + c0 + q] = s[q * ldb + p];
            }
            for (; c0 < nr; c0++)
            {
                float* s = src + (nint)c0 * ldb;
                float* d = dst + c0;
                if (c0 < cols)
                    for (int p = 0; p < kc; p++) d[(nint)p * nr] = s[p];
                else
                    for (int p = 0; p < kc; p++) d[(nint)p * nr] = 0;
            }
        }
    }

    /// <summary>d[q·ldd + r] = s[r·lds + q] for q in 0..8, r in 0..rows (rows ≤ 8); each d row gets a full 8-float
    /// store whose lanes r ≥ rows are junk (rows &lt; 8 only with ldd = rows, where the next store overwrites them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose8x8(float* s, nint lds, int rows, float* d, nint ldd)
    {
        var r0 = Vector256.Load(s);
        var r1 = Vector256.Load(s + (rows > 1 ? lds : 0));
        var r2 = Vector256.Load(s + (rows > 2 ? 2 * lds : 0));
        var r3 = Vector256.Load(s + (rows > 3 ? 3 * lds : 0));
        var r4 = Vector256.Load(s + (rows > 4 ? 4 * lds : 0));
        var r5 = Vector256.Load(s + (rows > 5 ? 5 * lds : 0));
        var r6 = Vector256.Load(s + (rows > 6 ? 6 * lds : 0));
        var r7 = Vector256.Load(s + (rows > 7 ? 7 * lds : 0));
        Transpose8.InPlace(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
        r0.Store(d); r1.Store(d + ldd); r2.Store(d + 2 * ldd); r3.Store(d + 3 * ldd);
        r4.Store(d + 4 * ldd); r5.Store(d + 5 * ldd); r6.Store(d + 6 * ldd); r7.Store(d + 7 * ldd);
    }
}

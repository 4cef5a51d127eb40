// The microkernels of Gemm.Linear (Gemm.Linear.cs): a tile of yᵀ = W·xᵀ from MR rows of W read in place (row stride
// ldw, broadcast one element at a time) and one packed xᵀ sliver (kc × NR, k-major, packed by PackB). Every element is
// the chain acc = fma(W[r, p], xᵀ[p, q], acc) from 0, then C = acc or C + acc, as in Sgemm's kernels, whose
// products a·b are these b·a: the same bits.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

/// <summary>A tile of yᵀ: MR rows of W (read in place, row stride ldw) times one packed xᵀ sliver (kc × NR, k-major),
/// C[0..MR, 0..NR] (row stride ldc) = (accumulate ? C : 0) + Σ_p W[r, p]·xᵀ[p, q].</summary>
internal unsafe interface IWeightRowsKernel
{
    static abstract int MR { get; }
    static abstract int NR { get; }
    static abstract void Run(nint kc, float* w, nint ldw, float* xt, float* c, nint ldc, bool accumulate);
    /// <summary>xᵀ's rows [p0, p0 + kc) for x's rows [i0, i0 + rows), rows ≤ NR: one zero-padded sliver.</summary>
    static abstract void PackX(float* x, nint ldx, int i0, int rows, int p0, int kc, float* dst);
}

public static unsafe partial class Gemm
{
    /// <summary>12 rows of W × 32 rows of x: 24 Vector512 accumulators, per k 2 xᵀ loads + 12 broadcasts from W's rows
    /// + 24 FMAs (AVX-512 machines).</summary>
    internal readonly struct RowsKernel12x32 : IWeightRowsKernel
    {
        public static int MR => 12;
        public static int NR => 32;

        public static void PackX(float* x, nint ldx, int i0, int rows, int p0, int kc, float* dst) =>
            PackB<Kernel12x32>(true, x, ldx, p0, kc, i0, rows, dst);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(nint kc, float* w, nint ldw, float* xt, float* c, nint ldc, bool accumulate)
        {
            if (Sse.IsSupported)
                for (nint r = 0; r < 12; r++)
                {
                    Sse.Prefetch0(c + r * ldc);
                    Sse.Prefetch0(c + r * ldc + 31);
                }
            float* w4 = w + 4 * ldw, w8 = w + 8 * ldw;
            nint l2 = 2 * ldw, l3 = 3 * ldw;
            Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default, c90 = default, c91 = default, c100 = default, c101 = default, c110 = default, c111 = default;
            for (nint p = 0; p < kc; p++)
            {
                PrefetchSliver(xt + PrefetchAhead * 32);
                var b0 = Vector512.Load(xt);
                var b1 = Vector512.Load(xt + 16);
                Vector512<float> av;
                av = Vector512.Create(w[0]);
                c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
                c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
                av = Vector512.Create(w[ldw]);
                c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
                c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
                av = Vector512.Create(w[l2]);
                c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
                c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
                av = Vector512.Create(w[l3]);
                c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
                c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
                av = Vector512.Create(w4[0]);
                c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
                c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
                av = Vector512.Create(w4[ldw]);
                c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
                c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
                av = Vector512.Create(w4[l2]);
                c60 = Vector512.FusedMultiplyAdd(av, b0, c60);
                c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
                av = Vector512.Create(w4[l3]);
                c70 = Vector512.FusedMultiplyAdd(av, b0, c70);
                c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
                av = Vector512.Create(w8[0]);
                c80 = Vector512.FusedMultiplyAdd(av, b0, c80);
                c81 = Vector512.FusedMultiplyAdd(av, b1, c81);
                av = Vector512.Create(w8[ldw]);
                c90 = Vector512.FusedMultiplyAdd(av, b0, c90);
                c91 = Vector512.FusedMultiplyAdd(av, b1, c91);
                av = Vector512.Create(w8[l2]);
                c100 = Vector512.FusedMultiplyAdd(av, b0, c100);
                c101 = Vector512.FusedMultiplyAdd(av, b1, c101);
                av = Vector512.Create(w8[l3]);
                c110 = Vector512.FusedMultiplyAdd(av, b0, c110);
                c111 = Vector512.FusedMultiplyAdd(av, b1, c111);
                w++; w4++; w8++;
                xt += 32;
            }
            Store2(c, c00, c01, accumulate); c += ldc;
            Store2(c, c10, c11, accumulate); c += ldc;
            Store2(c, c20, c21, accumulate); c += ldc;
            Store2(c, c30, c31, accumulate); c += ldc;
            Store2(c, c40, c41, accumulate); c += ldc;
            Store2(c, c50, c51, accumulate); c += ldc;
            Store2(c, c60, c61, accumulate); c += ldc;
            Store2(c, c70, c71, accumulate); c += ldc;
            Store2(c, c80, c81, accumulate); c += ldc;
            Store2(c, c90, c91, accumulate); c += ldc;
            Store2(c, c100, c101, accumulate); c += ldc;
            Store2(c, c110, c111, accumulate);
        }
    }

    /// <summary>6 rows of W × 32 rows of x: 12 Vector512 accumulators, per k 2 xᵀ loads + 6 broadcasts + 12 FMAs
    /// (AVX-512 machines, W rows whose 12-row panels would share an L1 set).</summary>
    internal readonly struct RowsKernel6x32 : IWeightRowsKernel
    {
        public static int MR => 6;
        public static int NR => 32;

        public static void PackX(float* x, nint ldx, int i0, int rows, int p0, int kc, float* dst) =>
            PackB<Kernel12x32>(true, x, ldx, p0, kc, i0, rows, dst);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(nint kc, float* w, nint ldw, float* xt, float* c, nint ldc, bool accumulate)
        {
            if (Sse.IsSupported)
                for (nint r = 0; r < 6; r++)
                {
                    Sse.Prefetch0(c + r * ldc);
                    Sse.Prefetch0(c + r * ldc + 31);
                }
            float* w3 = w + 3 * ldw;
            nint l2 = 2 * ldw;
            Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            for (nint p = 0; p < kc; p++)
            {
                PrefetchSliver(xt + PrefetchAhead * 32);
                var b0 = Vector512.Load(xt);
                var b1 = Vector512.Load(xt + 16);
                var av = Vector512.Create(w[0]);
                c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
                c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
                av = Vector512.Create(w[ldw]);
                c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
                c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
                av = Vector512.Create(w[l2]);
                c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
                c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
                av = Vector512.Create(w3[0]);
                c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
                c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
                av = Vector512.Create(w3[ldw]);
                c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
                c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
                av = Vector512.Create(w3[l2]);
                c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
                c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
                w++; w3++;
                xt += 32;
            }
            Store2(c, c00, c01, accumulate); c += ldc;
            Store2(c, c10, c11, accumulate); c += ldc;
            Store2(c, c20, c21, accumulate); c += ldc;
            Store2(c, c30, c31, accumulate); c += ldc;
            Store2(c, c40, c41, accumulate); c += ldc;
            Store2(c, c50, c51, accumulate);
        }
    }

    /// <summary>6 rows of W × 16 rows of x: 12 Vector256 accumulators, per k 2 xᵀ loads + 6 broadcasts + 12 FMAs (AVX2).</summary>
    internal readonly struct RowsKernel6x16 : IWeightRowsKernel
    {
        public static int MR => 6;
        public static int NR => 16;

        public static void PackX(float* x, nint ldx, int i0, int rows, int p0, int kc, float* dst) =>
            PackB<Kernel6x16>(true, x, ldx, p0, kc, i0, rows, dst);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(nint kc, float* w, nint ldw, float* xt, float* c, nint ldc, bool accumulate)
        {
            if (Sse.IsSupported)
                for (nint r = 0; r < 6; r++)
                {
                    Sse.Prefetch0(c + r * ldc);
                    Sse.Prefetch0(c + r * ldc + 15);
                }
            float* w3 = w + 3 * ldw;
            nint l2 = 2 * ldw;
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            for (nint p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(xt);
                var b1 = Vector256.Load(xt + 8);
                var av = Vector256.Create(w[0]);
                c00 = Vector256.FusedMultiplyAdd(av, b0, c00);
                c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                av = Vector256.Create(w[ldw]);
                c10 = Vector256.FusedMultiplyAdd(av, b0, c10);
                c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                av = Vector256.Create(w[l2]);
                c20 = Vector256.FusedMultiplyAdd(av, b0, c20);
                c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                av = Vector256.Create(w3[0]);
                c30 = Vector256.FusedMultiplyAdd(av, b0, c30);
                c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                av = Vector256.Create(w3[ldw]);
                c40 = Vector256.FusedMultiplyAdd(av, b0, c40);
                c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                av = Vector256.Create(w3[l2]);
                c50 = Vector256.FusedMultiplyAdd(av, b0, c50);
                c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
                w++; w3++;
                xt += 16;
            }
            Store2(c, c00, c01, accumulate); c += ldc;
            Store2(c, c10, c11, accumulate); c += ldc;
            Store2(c, c20, c21, accumulate); c += ldc;
            Store2(c, c30, c31, accumulate); c += ldc;
            Store2(c, c40, c41, accumulate); c += ldc;
            Store2(c, c50, c51, accumulate);
        }
    }
}

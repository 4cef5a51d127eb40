// GEMM register-blocked microkernels: an MR×NR tile of C from a packed A panel (kc × MR, k-major) and a packed
// B sliver (kc × NR, k-major). Every FMA kernel computes each element as the same chain
// acc = fma(a[p], b[p], acc) for p = 0..kc-1 from acc = 0, then C = acc or C = C + acc, so all FMA kernels give
// identical bits and the choice of kernel (or tile position) never changes a result.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

/// <summary>C[0..MR, 0..NR] (row stride ldc) = (accumulate ? C : 0) + Apanel·Bsliver over kc steps; B's k rows are
/// ldb apart (NR when packed, the source row stride when B is read in place).</summary>
internal unsafe interface IMicroKernel
{
    static abstract int MR { get; }
    static abstract int NR { get; }
    /// <summary>The macro loop keeps one A panel in L1 and streams the B slivers past it (the kernel prefetches B
    /// ahead); otherwise it keeps one B sliver in L1 and streams the A panels.</summary>
    static abstract bool StreamsB { get; }
    static abstract void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate);
}

public static unsafe partial class Gemm
{

    /// <summary>6×16 tile: 12 Vector256 accumulators, per k 2 B loads + 6 broadcasts + 12 FMAs.</summary>
    internal readonly struct Kernel6x16 : IMicroKernel
    {
        public static int MR => 6;
        public static int NR => 16;
        public static bool StreamsB => false;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate)
        {
            if (Sse.IsSupported)
                for (nint r = 0; r < 6; r++)
                {
                    Sse.Prefetch0(c + r * ldc);
                    Sse.Prefetch0(c + r * ldc + 15);
                }
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            for (nint p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b);
                var b1 = Vector256.Load(b + 8);
                var av = Vector256.Create(a[0]);
                c00 = Vector256.FusedMultiplyAdd(av, b0, c00);
                c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                av = Vector256.Create(a[1]);
                c10 = Vector256.FusedMultiplyAdd(av, b0, c10);
                c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                av = Vector256.Create(a[2]);
                c20 = Vector256.FusedMultiplyAdd(av, b0, c20);
                c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                av = Vector256.Create(a[3]);
                c30 = Vector256.FusedMultiplyAdd(av, b0, c30);
                c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                av = Vector256.Create(a[4]);
                c40 = Vector256.FusedMultiplyAdd(av, b0, c40);
                c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                av = Vector256.Create(a[5]);
                c50 = Vector256.FusedMultiplyAdd(av, b0, c50);
                c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
                a += 6;
                b += ldb;
            }
            Store2(c, c00, c01, accumulate); c += ldc;
            Store2(c, c10, c11, accumulate); c += ldc;
            Store2(c, c20, c21, accumulate); c += ldc;
            Store2(c, c30, c31, accumulate); c += ldc;
            Store2(c, c40, c41, accumulate); c += ldc;
            Store2(c, c50, c51, accumulate);
        }
    }

    /// <summary>4×24 tile: 12 Vector256 accumulators, per k 3 B loads + 4 broadcasts + 12 FMAs (less M padding for M=32/64).</summary>
    internal readonly struct Kernel4x24 : IMicroKernel
    {
        public static int MR => 4;
        public static int NR => 24;
        public static bool StreamsB => false;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate)
        {
            if (Sse.IsSupported)
                for (nint r = 0; r < 4; r++)
                {
                    Sse.Prefetch0(c + r * ldc);
                    Sse.Prefetch0(c + r * ldc + 12);
                    Sse.Prefetch0(c + r * ldc + 23);
                }
            Vector256<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default;
            Vector256<float> c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default;
            for (nint p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b);
                var b1 = Vector256.Load(b + 8);
                var b2 = Vector256.Load(b + 16);
                var av = Vector256.Create(a[0]);
                c00 = Vector256.FusedMultiplyAdd(av, b0, c00);
                c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                c02 = Vector256.FusedMultiplyAdd(av, b2, c02);
                av = Vector256.Create(a[1]);
                c10 = Vector256.FusedMultiplyAdd(av, b0, c10);
                c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                c12 = Vector256.FusedMultiplyAdd(av, b2, c12);
                av = Vector256.Create(a[2]);
                c20 = Vector256.FusedMultiplyAdd(av, b0, c20);
                c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                c22 = Vector256.FusedMultiplyAdd(av, b2, c22);
                av = Vector256.Create(a[3]);
                c30 = Vector256.FusedMultiplyAdd(av, b0, c30);
                c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                c32 = Vector256.FusedMultiplyAdd(av, b2, c32);
                a += 4;
                b += ldb;
            }
            Store3(c, c00, c01, c02, accumulate); c += ldc;
            Store3(c, c10, c11, c12, accumulate); c += ldc;
            Store3(c, c20, c21, c22, accumulate); c += ldc;
            Store3(c, c30, c31, c32, accumulate);
        }
    }

    /// <summary>8×32 tile: 16 Vector512 accumulators, per k 2 B loads + 8 broadcasts + 16 FMAs (AVX-512 machines).</summary>
    internal readonly struct Kernel8x32 : IMicroKernel
    {
        public static int MR => 8;
        public static int NR => 32;
        public static bool StreamsB => true;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate)
        {
            if (Sse.IsSupported)
                for (nint r = 0; r < 8; r++)
                {
                    Sse.Prefetch0(c + r * ldc);
                    Sse.Prefetch0(c + r * ldc + 31);
                }
            Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
            for (nint p = 0; p < kc; p++)
            {
                PrefetchSliver(b + PrefetchAhead * ldb);
                var b0 = Vector512.Load(b);
                var b1 = Vector512.Load(b + 16);
                var av = Vector512.Create(a[0]);
                c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
                c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
                av = Vector512.Create(a[1]);
                c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
                c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
                av = Vector512.Create(a[2]);
                c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
                c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
                av = Vector512.Create(a[3]);
                c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
                c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
                av = Vector512.Create(a[4]);
                c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
                c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
                av = Vector512.Create(a[5]);
                c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
                c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
                av = Vector512.Create(a[6]);
                c60 = Vector512.FusedMultiplyAdd(av, b0, c60);
                c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
                av = Vector512.Create(a[7]);
                c70 = Vector512.FusedMultiplyAdd(av, b0, c70);
                c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
                a += 8;
                b += ldb;
            }
            Store2(c, c00, c01, accumulate); c += ldc;
            Store2(c, c10, c11, accumulate); c += ldc;
            Store2(c, c20, c21, accumulate); c += ldc;
            Store2(c, c30, c31, accumulate); c += ldc;
            Store2(c, c40, c41, accumulate); c += ldc;
            Store2(c, c50, c51, accumulate); c += ldc;
            Store2(c, c60, c61, accumulate); c += ldc;
            Store2(c, c70, c71, accumulate);
        }
    }

    /// <summary>12×32 tile: 24 Vector512 accumulators, per k 2 B loads + 12 broadcasts + 24 FMAs (AVX-512 machines).</summary>
    internal readonly struct Kernel12x32 : IMicroKernel
    {
        public static int MR => 12;
        public static int NR => 32;
        public static bool StreamsB => true;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate)
        {
            if (Sse.IsSupported)
                for (nint r = 0; r < 12; r++)
                {
                    Sse.Prefetch0(c + r * ldc);
                    Sse.Prefetch0(c + r * ldc + 31);
                }
            Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default, c90 = default, c91 = default, c100 = default, c101 = default, c110 = default, c111 = default;
            for (nint p = 0; p < kc; p++)
            {
                PrefetchSliver(b + PrefetchAhead * ldb);
                var b0 = Vector512.Load(b);
                var b1 = Vector512.Load(b + 16);
                Vector512<float> av;
                av = Vector512.Create(a[0]);
                c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
                c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
                av = Vector512.Create(a[1]);
                c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
                c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
                av = Vector512.Create(a[2]);
                c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
                c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
                av = Vector512.Create(a[3]);
                c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
                c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
                av = Vector512.Create(a[4]);
                c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
                c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
                av = Vector512.Create(a[5]);
                c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
                c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
                av = Vector512.Create(a[6]);
                c60 = Vector512.FusedMultiplyAdd(av, b0, c60);
                c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
                av = Vector512.Create(a[7]);
                c70 = Vector512.FusedMultiplyAdd(av, b0, c70);
                c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
                av = Vector512.Create(a[8]);
                c80 = Vector512.FusedMultiplyAdd(av, b0, c80);
                c81 = Vector512.FusedMultiplyAdd(av, b1, c81);
                av = Vector512.Create(a[9]);
                c90 = Vector512.FusedMultiplyAdd(av, b0, c90);
                c91 = Vector512.FusedMultiplyAdd(av, b1, c91);
                av = Vector512.Create(a[10]);
                c100 = Vector512.FusedMultiplyAdd(av, b0, c100);
                c101 = Vector512.FusedMultiplyAdd(av, b1, c101);
                av = Vector512.Create(a[11]);
                c110 = Vector512.FusedMultiplyAdd(av, b0, c110);
                c111 = Vector512.FusedMultiplyAdd(av, b1, c111);
                a += 12;
                b += ldb;
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

    /// <summary>4×8 tile in Vector128 with separate multiply and add: the fallback where AVX2/FMA is missing.</summary>
    internal readonly struct KernelPortable : IMicroKernel
    {
        public static int MR => 4;
        public static int NR => 8;
        public static bool StreamsB => false;

        public static void Run(nint kc, float* a, float* b, nint ldb, float* c, nint ldc, bool accumulate)
        {
            Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default;
            Vector128<float> c20 = default, c21 = default, c30 = default, c31 = default;
            for (nint p = 0; p < kc; p++)
            {
                var b0 = Vector128.Load(b);
                var b1 = Vector128.Load(b + 4);
                var av = Vector128.Create(a[0]);
                c00 += av * b0; c01 += av * b1;
                av = Vector128.Create(a[1]);
                c10 += av * b0; c11 += av * b1;
                av = Vector128.Create(a[2]);
                c20 += av * b0; c21 += av * b1;
                av = Vector128.Create(a[3]);
                c30 += av * b0; c31 += av * b1;
                a += 4;
                b += ldb;
            }
            Store2(c, c00, c01, accumulate); c += ldc;
            Store2(c, c10, c11, accumulate); c += ldc;
            Store2(c, c20, c21, accumulate); c += ldc;
            Store2(c, c30, c31, accumulate);
        }
    }

    /// <summary>k steps ahead that the B-streaming kernels prefetch their sliver (measured: 8 beats 4 and 16; with the
    /// prefetch, 12×32 at 1024³ went from 206 to 221-226 GFLOP/s on 2 threads).</summary>
    const int PrefetchAhead = 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchSliver(float* b)
    {
        Sse.Prefetch0(b);
        Sse.Prefetch0(b + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store2(float* c, Vector256<float> v0, Vector256<float> v1, bool accumulate)
    {
        if (accumulate)
        {
            v0 = Vector256.Load(c) + v0;
            v1 = Vector256.Load(c + 8) + v1;
        }
        v0.Store(c);
        v1.Store(c + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store2(float* c, Vector128<float> v0, Vector128<float> v1, bool accumulate)
    {
        if (accumulate)
        {
            v0 = Vector128.Load(c) + v0;
            v1 = Vector128.Load(c + 4) + v1;
        }
        v0.Store(c);
        v1.Store(c + 4);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store2(float* c, Vector512<float> v0, Vector512<float> v1, bool accumulate)
    {
        if (accumulate)
        {
            v0 = Vector512.Load(c) + v0;
            v1 = Vector512.Load(c + 16) + v1;
        }
        v0.Store(c);
        v1.Store(c + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store3(float* c, Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, bool accumulate)
    {
        if (accumulate)
        {
            v0 = Vector256.Load(c) + v0;
            v1 = Vector256.Load(c + 8) + v1;
            v2 = Vector256.Load(c + 16) + v2;
        }
        v0.Store(c);
        v1.Store(c + 8);
        v2.Store(c + 16);
    }
}

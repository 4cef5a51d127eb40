// The 8×8 float transpose in eight AVX registers (three shuffle stages), shared by GEMM packing, Gemm.Linear's store
// and the lane layout of ConvLanes. Callers store the columns, so each picks its own addresses; rows evenly strided in
// memory load through LoadTransposed.
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

internal static class Transpose8
{
    /// <summary>On return r_k holds column k of the 8×8 block whose rows were r0..r7 (element j of r_k = old r_j[k]).
    /// Needs AVX.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void InPlace(ref Vector256<float> r0, ref Vector256<float> r1, ref Vector256<float> r2, ref Vector256<float> r3,
        ref Vector256<float> r4, ref Vector256<float> r5, ref Vector256<float> r6, ref Vector256<float> r7)
    {
        // stage 1: interleave pairs of rows (32-bit, within 128-bit halves)
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        // stage 2: 64-bit interleave
        var u0 = Lo64(t0, t2); var u1 = Hi64(t0, t2); var u2 = Lo64(t1, t3); var u3 = Hi64(t1, t3);
        var u4 = Lo64(t4, t6); var u5 = Hi64(t4, t6); var u6 = Lo64(t5, t7); var u7 = Hi64(t5, t7);
        // stage 3: swap 128-bit halves
        r0 = Vector256.Create(u0.GetLower(), u4.GetLower()); r1 = Vector256.Create(u1.GetLower(), u5.GetLower());
        r2 = Vector256.Create(u2.GetLower(), u6.GetLower()); r3 = Vector256.Create(u3.GetLower(), u7.GetLower());
        r4 = Vector256.Create(u0.GetUpper(), u4.GetUpper()); r5 = Vector256.Create(u1.GetUpper(), u5.GetUpper());
        r6 = Vector256.Create(u2.GetUpper(), u6.GetUpper()); r7 = Vector256.Create(u3.GetUpper(), u7.GetUpper());
    }

    /// <summary>Loads the eight rows s, s + stride, …, s + 7·stride and transposes them: on return r_k holds column k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void LoadTransposed(float* s, long stride, out Vector256<float> r0, out Vector256<float> r1, out Vector256<float> r2,
        out Vector256<float> r3, out Vector256<float> r4, out Vector256<float> r5, out Vector256<float> r6, out Vector256<float> r7)
    {
        r0 = Vector256.Load(s); r1 = Vector256.Load(s + stride);
        r2 = Vector256.Load(s + 2 * stride); r3 = Vector256.Load(s + 3 * stride);
        r4 = Vector256.Load(s + 4 * stride); r5 = Vector256.Load(s + 5 * stride);
        r6 = Vector256.Load(s + 6 * stride); r7 = Vector256.Load(s + 7 * stride);
        InPlace(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Lo64(Vector256<float> x, Vector256<float> y) => Avx.UnpackLow(x.AsDouble(), y.AsDouble()).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Hi64(Vector256<float> x, Vector256<float> y) => Avx.UnpackHigh(x.AsDouble(), y.AsDouble()).AsSingle();
}

// The elementwise SIMD kernels (Kernels/Unary.cs, Kernels/Binary.cs) against their scalar references at every
// length 0..257, at misaligned offsets 1..3 into a larger array, and in place where the API allows it.
using System.Runtime.Intrinsics;
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

public class ElementwiseKernelTests
{
    public static IEnumerable<object[]> Lengths => Enumerable.Range(0, 258).Select(n => new object[] { n });

    static float[] Input(int n, int seed, float lo = -4f, float hi = 4f)
    {
        var a = new float[n];
        new Rng((ulong)seed).FillUniform(a, lo, hi);
        return a;
    }

    /// <summary>Vector256.Exp/Log and the scalar MathF versions may differ by a few ulps; everything else is exact.</summary>
    static void AssertUlps(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float relTol, string what, float atol = 0f)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (e == a || float.IsNaN(e) && float.IsNaN(a)) continue;
            Assert.True(Math.Abs(e - a) <= relTol * Math.Max(Math.Abs(e), 1e-30f) + atol + 1e-37f, $"{what}[{i}]: reference {e:G9}, kernel {a:G9}");
        }
    }

    static void CheckUnary<TOp>(int n, float relTol, float lo = -4f, float hi = 4f) where TOp : struct, IUnaryOp
    {
        for (int offset = 0; offset <= 3; offset++)
        {
            var big = Input(n + 8, n * 7 + offset, lo, hi);
            var x = big.AsSpan(offset, n);
            var expected = new float[n];
            Unary.Reference<TOp>(x, expected);
            var dst = new float[n + 8];
            Unary.Map<TOp>(x, dst.AsSpan(offset + 1, n));
            AssertUlps(expected, dst.AsSpan(offset + 1, n), relTol, typeof(TOp).Name);
            Unary.Map<TOp>(x, x);   // in place
            AssertUlps(expected, x, relTol, typeof(TOp).Name + " in place");
        }
    }

    [Theory, MemberData(nameof(Lengths))]
    public void Unary_kernels_match_reference_at_every_length(int n)
    {
        CheckUnary<NegOp>(n, 0f);
        CheckUnary<SqrtOp>(n, 0f, 0f, 10f);
        CheckUnary<ExpOp>(n, 4e-7f);
        CheckUnary<LogOp>(n, 4e-7f, 1e-3f, 100f);
        CheckUnary<SigmoidOp>(n, 5e-7f);
        CheckUnary<SiluOp>(n, 5e-7f);
        CheckUnary<QuickGeluOp>(n, 5e-7f);
        CheckUnary<TanhOp>(n, 1e-6f);
        CheckUnary<GeluOp>(n, 4e-6f);      // float erf fit in the vector body (GeluKernelTests)
    }

    /// <summary>relTol 0: bit-exact; the fused gradient operators may round differently in the vector body (≤ 2 ulps).</summary>
    static void CheckBinary<TOp>(int n, float relTol = 0f) where TOp : struct, IBinaryOp
    {
        for (int offset = 0; offset <= 3; offset++)
        {
            var a = Input(n + 8, n + offset).AsSpan(offset, n);
            var b = Input(n + 8, 1000 + n + offset, 0.5f, 3f).AsSpan(3 - offset, n);
            var expected = new float[n];
            Binary.Reference<TOp>(a, b, expected);
            var dst = new float[n + 4];
            Binary.Map<TOp>(a, b, dst.AsSpan(offset, n));
            AssertUlps(expected, dst.AsSpan(offset, n), relTol, typeof(TOp).Name);

            var acc = Input(n, 2000 + n);
            var accExpected = acc.Select((v, i) => v + expected[i]).ToArray();
            Binary.Accumulate<TOp>(a, b, acc);
            // acc + op(a, b) may cancel: judge the op's rounding against the operands' scale (|op| ≤ 8 here).
            AssertUlps(accExpected, acc, relTol, typeof(TOp).Name + " accumulate", atol: 8 * relTol);

            float s = 1.7f;
            Binary.MapScalarB<TOp>(a, s, dst.AsSpan(offset, n));
            for (int i = 0; i < n; i++) expected[i] = TOp.Invoke(a[i], s);
            AssertUlps(expected, dst.AsSpan(offset, n), relTol, typeof(TOp).Name + " scalar b");
            Binary.MapScalarA<TOp>(s, b, dst.AsSpan(offset, n));
            for (int i = 0; i < n; i++) expected[i] = TOp.Invoke(s, b[i]);
            AssertUlps(expected, dst.AsSpan(offset, n), relTol, typeof(TOp).Name + " scalar a");
        }
    }

    [Theory, MemberData(nameof(Lengths))]
    public void Binary_kernels_match_reference_at_every_length(int n)
    {
        CheckBinary<AddOp>(n);
        CheckBinary<SubOp>(n);
        CheckBinary<MulOp>(n);
        CheckBinary<DivOp>(n);
        CheckBinary<SiluGradOp>(n, 1e-6f);
        CheckBinary<TanhGradOp>(n, 1e-6f);
    }

    /// <summary>Group norm's SiLU backward reads σ back from the forward's output y = z·σ(z) (one division, no
    /// exponential): against σ computed from z in double, z over ±90 with zeros and tiny values mixed in.</summary>
    [Theory, MemberData(nameof(Lengths))]
    public unsafe void Silu_backward_from_the_output_matches_the_reference(int n)
    {
        for (int offset = 0; offset <= 3; offset++)
        {
            var z = Input(n + 4, 3 * n + offset, -90f, 90f);
            for (int i = 0; i < z.Length; i += 7) z[i] = i % 3 == 0 ? 0f : i % 3 == 1 ? 1e-30f : -3e-19f;
            var dy = Input(n + 4, 5 * n + offset, -2f, 2f);
            var y = new float[n + 4];
            Unary.Map<SiluOp>(z, y);                              // the forward's output, as group norm stores it
            var got = new float[n + 4];
            fixed (float* pz = z, py = y, pd = dy, pg = got)
            {
                int i = offset, end = offset + n;
                for (; i + 8 <= end; i += 8)
                    SiluActivation.Backward(Vector256.Load(pd + i), Vector256.Load(pz + i), Vector256.Load(py + i)).Store(pg + i);
                for (; i < end; i++) pg[i] = SiluActivation.Backward(pd[i], pz[i], py[i]);
            }
            for (int i = offset; i < offset + n; i++)
            {
                float e = SiluActivation.BackwardReference(dy[i], z[i]);
                Assert.True(Math.Abs(got[i] - e) <= 1e-6f * Math.Abs(dy[i]) * Math.Max(1f, Math.Abs(z[i])) + 1e-30f,
                    $"z={z[i]:G9} dy={dy[i]:G9}: reference {e:G9}, kernel {got[i]:G9}");
            }
        }
    }

    [Theory, MemberData(nameof(Lengths))]
    public void Copy_matches_the_source_at_every_length_and_offset(int n)
    {
        foreach (int len in new[] { n, n * 257 })                 // the long one takes the threaded path
            for (int offset = 0; offset <= 3; offset++)
            {
                var src = Input(len + 4, len + offset);
                var dst = new float[len + 8];
                Array.Fill(dst, float.NaN);
                Binary.CopyInto(src.AsSpan(offset, len), dst.AsSpan(3 - offset + 1, len));
                Assert.True(src.AsSpan(offset, len).SequenceEqual(dst.AsSpan(3 - offset + 1, len)), $"copy of {len} at offset {offset}");
                Assert.True(float.IsNaN(dst[3 - offset]) && float.IsNaN(dst[3 - offset + 1 + len]), "copy wrote outside its destination");
            }
    }

    [Fact]
    public void Long_maps_split_over_threads_match_the_reference()
    {
        int n = Unary.ParallelThreshold * 3 + 5;
        var x = Input(n, 1);
        var expected = new float[n]; var got = new float[n];
        Unary.Reference<SiluOp>(x, expected);
        Unary.Map<SiluOp>(x, got);
        AssertUlps(expected, got, 5e-7f, "silu");
    }
}

// The dropout mask as a pure function of a 64-bit key drawn from the caller's Rng, so that the backward recomputes
// it instead of keeping a mask tensor, and the result is the same whatever the thread count. Elements are cut into
// fixed chunks of ChunkLength; chunk c runs xoshiro256** (Blackman & Vigna) in four independent lanes, one per 64-bit
// word of a Vector256, whose states are SplitMix64 outputs 16c … 16c + 15 of a stream seeded by the key. Each
// vector step yields 4 × 64 bits, read as eight 32-bit uniforms u for eight consecutive elements (the low half of
// lane w's word first); an element is kept when u ≥ ⌈p·2³²⌉, so P(keep) = 1 − p to within 2⁻³², and kept elements
// carry the inverted-dropout scale 1/(1 − p) (as torch.nn.functional.dropout) so the expectation of the output
// equals the input.
using System.Diagnostics;
using System.Numerics;

namespace DiffuSharp.Kernels;

internal static class DropoutMask
{
    /// <summary>Elements per independently seeded chunk (a multiple of 8; the unit of work per thread).</summary>
    internal const int ChunkLength = 8192;

    /// <summary>Chunks below this many elements in all run on the calling thread.</summary>
    const int MinElementsPerThread = 1 << 16;

    /// <summary>y[i] = x[i] · mask_i (y may alias x).</summary>
    public static void Apply(ulong key, float p, ReadOnlySpan<float> x, Span<float> y)
    {
        Debug.Assert(y.Length >= x.Length);
        Run(key, p, x, y, accumulate: false);
    }

    /// <summary>dx[i] += dy[i] · mask_i: the backward of <see cref="Apply"/> with the same key and p.</summary>
    public static void ApplyAdd(ulong key, float p, ReadOnlySpan<float> dy, Span<float> dx)
    {
        Debug.Assert(dx.Length >= dy.Length);
        Run(key, p, dy, dx, accumulate: true);
    }

    /// <summary>mask[i] = u_i ≥ p ? 1/(1 − p) : 0, for 0 ≤ p ≤ 1 (p = 1 drops everything).</summary>
    public static void Fill(ulong key, float p, Span<float> mask)
    {
        mask.Fill(1f);
        Apply(key, p, mask, mask);
    }

    static unsafe void Run(ulong key, float p, ReadOnlySpan<float> src, Span<float> dst, bool accumulate)
    {
        int n = src.Length;
        if (n == 0) return;
        int chunks = (n + ChunkLength - 1) / ChunkLength;
        fixed (float* ps = src, pd = dst)
            ParallelFor.RunRange(chunks, new Work(key, Threshold(p), Scale(p), ps, pd, n, accumulate),
                Math.Max(1, MinElementsPerThread / ChunkLength));
    }

    /// <summary>⌈p·2³²⌉, compared with 32-bit uniforms as integers (no float rounding at the threshold).</summary>
    static ulong Threshold(float p) => (ulong)Math.Ceiling(p * 4294967296.0);

    static float Scale(float p) => p >= 1f ? 0f : (float)(1.0 / (1.0 - p));

    readonly unsafe struct Work(ulong key, ulong threshold, float scale, float* src, float* dst, int n, bool accumulate) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int c = begin; c < end; c++)
            {
                int start = c * ChunkLength, len = Math.Min(ChunkLength, n - start);
                Chunk(key, c, threshold, scale, src + start, dst + start, len, accumulate);
            }
        }
    }

    /// <summary>One chunk: xoshiro256** four lanes wide, each step masking eight elements.</summary>
    static unsafe void Chunk(ulong key, int chunk, ulong threshold, float scale, float* src, float* dst, int len, bool accumulate)
    {
        ulong* seed = stackalloc ulong[16];
        Seeds(key, chunk, new Span<ulong>(seed, 16));
        var s0 = Vector256.Load(seed); var s1 = Vector256.Load(seed + 4);
        var s2 = Vector256.Load(seed + 8); var s3 = Vector256.Load(seed + 12);
        // threshold 2³² (p = 1) keeps nothing: a mask of all zeros, scale 0
        var thr = Vector256.Create((uint)Math.Min(threshold, uint.MaxValue));
        var keep = Vector256.Create(threshold > uint.MaxValue ? 0f : scale).AsUInt32();
        float* tail = stackalloc float[8];
        for (int i = 0; i < len; i += 8)
        {
            // xoshiro256**: result = rotl(s1·5, 7)·9, then the linear state update
            var m5 = (s1 << 2) + s1;
            var rot = (m5 << 7) | (m5 >> 57);
            var r = (rot << 3) + rot;
            var t = s1 << 17;
            s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t;
            s3 = (s3 << 45) | (s3 >> 19);
            var mask = (Vector256.GreaterThanOrEqual(r.AsUInt32(), thr) & keep).AsSingle();   // 1/(1 − p) or 0
            if (i + 8 <= len)
            {
                var v = Vector256.Load(src + i) * mask;
                if (accumulate) v += Vector256.Load(dst + i);
                v.Store(dst + i);
            }
            else
            {
                mask.Store(tail);
                for (int j = 0; i + j < len; j++)
                    dst[i + j] = accumulate ? dst[i + j] + src[i + j] * tail[j] : src[i + j] * tail[j];
            }
        }
    }

    /// <summary>The 16 lane-state words of a chunk: SplitMix64 outputs 16·chunk … 16·chunk + 15 of the key's stream
    /// (words 0–3 are s0 of lanes 0–3, 4–7 s1, and so on). SplitMix64 never yields an all-zero xoshiro state.</summary>
    static void Seeds(ulong key, int chunk, Span<ulong> seed)
    {
        ulong z = key + (ulong)chunk * 16 * 0x9E3779B97F4A7C15UL;
        for (int i = 0; i < 16; i++)
        {
            ulong r = z += 0x9E3779B97F4A7C15UL;
            r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9UL;
            r = (r ^ (r >> 27)) * 0x94D049BB133111EBUL;
            seed[i] = r ^ (r >> 31);
        }
    }

    /// <summary>Scalar reference of <see cref="Fill"/>: one xoshiro256** generator per lane, stepped in turn.</summary>
    internal static void Reference(ulong key, float p, Span<float> mask)
    {
        ulong threshold = Threshold(p);
        float scale = Scale(p);
        Span<ulong> seed = stackalloc ulong[16];
        for (int start = 0, c = 0; start < mask.Length; start += ChunkLength, c++)
        {
            Seeds(key, c, seed);
            int len = Math.Min(ChunkLength, mask.Length - start);
            for (int i = 0; i < len; i += 8)
                for (int lane = 0; lane < 4; lane++)
                {
                    ref ulong a = ref seed[lane], b = ref seed[4 + lane], cc = ref seed[8 + lane], d = ref seed[12 + lane];
                    ulong r = BitOperations.RotateLeft(b * 5, 7) * 9;
                    ulong t = b << 17;
                    cc ^= a; d ^= b; b ^= cc; a ^= d; cc ^= t;
                    d = BitOperations.RotateLeft(d, 45);
                    for (int half = 0; half < 2; half++)
                    {
                        int e = i + 2 * lane + half;
                        uint u = (uint)(half == 0 ? r : r >> 32);
                        if (e < len) mask[start + e] = u >= threshold ? scale : 0f;
                    }
                }
        }
    }
}

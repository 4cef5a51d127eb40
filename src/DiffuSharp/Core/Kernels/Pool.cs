// 2×2 pooling and nearest-neighbour ×2 duplication over (H, W) planes: the kernels behind F.avg_pool2d(x, 2)
// (odd sizes floor, as PyTorch: the last row/column is dropped) and F.interpolate(scale_factor=2,
// mode="nearest"), and each one's adjoint. Pool2x2 sums 2×2 blocks, Dup2x2 copies each value into a 2×2
// block; avg-pool backward is a scaled Dup2x2, upsample backward a Pool2x2. Planes are split over threads;
// each plane is written by one thread, so results do not depend on the thread count.
namespace DiffuSharp.Kernels;

internal static unsafe class Pool
{
    // Vector256.Shuffle with constant indices compiles to one vpermps.
    static readonly Vector256<int> EvenIdx = Vector256.Create(0, 2, 4, 6, 0, 2, 4, 6);
    static readonly Vector256<int> OddIdx = Vector256.Create(1, 3, 5, 7, 1, 3, 5, 7);
    static readonly Vector256<int> DupIdx = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);

    /// <summary>dst[oy, ox] (+)= scale · (src[2oy, 2ox] + src[2oy, 2ox+1] + src[2oy+1, 2ox] + src[2oy+1, 2ox+1])
    /// for one plane: src rows of srcStride floats, dst (ho, wo) contiguous.</summary>
    public static void Pool2x2Plane(float* src, int srcStride, int ho, int wo, float* dst, float scale, bool accumulate)
    {
        var sv = Vector256.Create(scale);
        for (int oy = 0; oy < ho; oy++)
        {
            float* r0 = src + (long)2 * oy * srcStride, r1 = r0 + srcStride, d = dst + (long)oy * wo;
            int ox = 0;
            if (Vector256.IsHardwareAccelerated)
                for (; ox + 8 <= wo; ox += 8)
                {
                    var a = Vector256.Load(r0 + 2 * ox) + Vector256.Load(r1 + 2 * ox);           // columns 2ox .. 2ox+7
                    var b = Vector256.Load(r0 + 2 * ox + 8) + Vector256.Load(r1 + 2 * ox + 8);   // columns 2ox+8 .. 2ox+15
                    var even = Vector256.Create(Vector256.Shuffle(a, EvenIdx).GetLower(), Vector256.Shuffle(b, EvenIdx).GetLower());
                    var odd = Vector256.Create(Vector256.Shuffle(a, OddIdx).GetLower(), Vector256.Shuffle(b, OddIdx).GetLower());
                    var v = (even + odd) * sv;
                    if (accumulate) v += Vector256.Load(d + ox);
                    v.Store(d + ox);
                }
            for (; ox < wo; ox++)
            {
                float v = scale * ((r0[2 * ox] + r1[2 * ox]) + (r0[2 * ox + 1] + r1[2 * ox + 1]));   // the vector body's order
                d[ox] = accumulate ? d[ox] + v : v;
            }
        }
    }

    /// <summary>dst[2y+a, 2x+b] (+)= scale · src[y, x] for a, b ∈ {0, 1}, one plane: src (h, w) contiguous,
    /// dst rows of dstStride floats (dstStride ≥ 2w; columns and rows past 2w, 2h are left alone).</summary>
    public static void Dup2x2Plane(float* src, int h, int w, float* dst, int dstStride, float scale, bool accumulate)
    {
        var sv = Vector256.Create(scale);
        for (int y = 0; y < h; y++)
        {
            float* s = src + (long)y * w, d0 = dst + (long)2 * y * dstStride, d1 = d0 + dstStride;
            int x = 0;
            if (Vector256.IsHardwareAccelerated)
                for (; x + 4 <= w; x += 4)
                {
                    var v = Vector256.Shuffle(Vector128.Load(s + x).ToVector256Unsafe(), DupIdx) * sv;   // s0 s0 s1 s1 … s3 s3
                    if (accumulate)
                    {
                        (Vector256.Load(d0 + 2 * x) + v).Store(d0 + 2 * x);
                        (Vector256.Load(d1 + 2 * x) + v).Store(d1 + 2 * x);
                    }
                    else { v.Store(d0 + 2 * x); v.Store(d1 + 2 * x); }
                }
            for (; x < w; x++)
            {
                float v = scale * s[x];
                if (accumulate) { d0[2 * x] += v; d0[2 * x + 1] += v; d1[2 * x] += v; d1[2 * x + 1] += v; }
                else { d0[2 * x] = v; d0[2 * x + 1] = v; d1[2 * x] = v; d1[2 * x + 1] = v; }
            }
        }
    }

    /// <summary><see cref="Pool2x2Plane"/> over planes: src (planes, h, w) → dst (planes, h/2, w/2).</summary>
    public static void Pool2x2(float* src, int planes, int h, int w, float* dst, float scale, bool accumulate)
    {
        var work = new PoolWork(src, h, w, dst, scale, accumulate);
        ParallelFor.Run(planes, work, Math.Max(1, (1 << 15) / Math.Max(1, h * w)));
    }

    /// <summary><see cref="Dup2x2Plane"/> over planes: src (planes, h, w) → dst (planes, dh, dw), dh ≥ 2h, dw ≥ 2w.</summary>
    public static void Dup2x2(float* src, int planes, int h, int w, float* dst, int dh, int dw, float scale, bool accumulate)
    {
        var work = new DupWork(src, h, w, dst, dh, dw, scale, accumulate);
        ParallelFor.Run(planes, work, Math.Max(1, (1 << 15) / Math.Max(1, dh * dw)));
    }

    readonly struct PoolWork(float* src, int h, int w, float* dst, float scale, bool accumulate) : IWorkItem
    {
        public void Invoke(int p) => Pool2x2Plane(src + (long)p * h * w, w, h / 2, w / 2, dst + (long)p * (h / 2) * (w / 2), scale, accumulate);
    }

    readonly struct DupWork(float* src, int h, int w, float* dst, int dh, int dw, float scale, bool accumulate) : IWorkItem
    {
        public void Invoke(int p) => Dup2x2Plane(src + (long)p * h * w, h, w, dst + (long)p * dh * dw, dw, scale, accumulate);
    }

    /// <summary>Plain loops (the reference for tests): dst (planes, h/2, w/2) = scale · 2×2 block sums of src (planes, h, w).</summary>
    internal static void Pool2x2Reference(ReadOnlySpan<float> src, int planes, int h, int w, Span<float> dst, float scale)
    {
        int ho = h / 2, wo = w / 2;
        for (int p = 0; p < planes; p++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    float s = 0;
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++) s += src[(p * h + 2 * oy + a) * w + 2 * ox + b];
                    dst[(p * ho + oy) * wo + ox] = scale * s;
                }
    }

    /// <summary>Plain loops (the reference for tests): dst (planes, 2h, 2w)[y, x] = scale · src[y/2, x/2].</summary>
    internal static void Dup2x2Reference(ReadOnlySpan<float> src, int planes, int h, int w, Span<float> dst, float scale)
    {
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < 2 * h; y++)
                for (int x = 0; x < 2 * w; x++)
                    dst[(p * 2 * h + y) * 2 * w + x] = scale * src[(p * h + y / 2) * w + x / 2];
    }
}

// Direct 3×3 "same" convolution with the batch in the vector lanes on AVX-512: dW up to 32×32, and the layout the
// Winograd kernel (ConvWinograd) runs the forward and dx on up to 32×32; without Winograd, the forward up to 14×14
// and dx up to 32×32 (PreferForward, PreferBackward).
//
// The NCHW direct kernel (ConvDirect) runs along the pixels of one image: at 7×7 a quarter of its FMAs go to the
// two padding columns of every row and to the ragged last tile, and two of every three input loads straddle two
// cache lines. Here the images are the vector lanes instead. A "lane tensor" holds channel c, padded position
// (y, x) and image b at xl[(c·Hp + y)·Wp + x][b], with L = the batch rounded up to 16 lanes (one Vector512 per 16
// images; the extra lanes are zero). A flat output vector u (position u / V, lanes 16·(u % V) .. +16, V = L / 16)
// then needs, for tap (i, j), the input vector at a fixed offset from its own: every load is a whole aligned
// Vector512, no output is computed and dropped, and a tile can be any three output vectors (they need not share a
// row), so there is no ragged tail either.
//
// Tile: 8 output channels × 3 output vectors = 24 accumulators; per (input channel, tap) 3 input loads + 8
// broadcast weights for 24 FMAs (weights packed by ConvDirect.PackWeights, [block][c][tap][8]). The same kernel
// gives dx from dy with the flipped, transposed kernel. dW[o, c, i, j] = Σ_(y, x) Σ_b dy[o, y, x][b] ·
// xpad[c, y + i, x + j][b]: 3 output channels × 1 input channel × 9 taps = 27 accumulators over whole rows of
// aligned vectors, one work item per (c, output triple) summing every image, so nothing depends on the thread
// count. The NCHW ↔ lane transposes are a few hundred kilobytes each, small next to the FMAs they save.
using System.Buffers;
using System.Runtime.Intrinsics.X86;

namespace DiffuSharp.Kernels;

internal static unsafe class ConvLanes
{
    const int OutBlock = 8, Lane = 16;

    /// <summary>Tests turn this on (KernelSwitches) to turn the lane path off (and compare it with the others).</summary>
    internal static bool Disabled => KernelSwitches.Current.LanesDisabled;

    /// <summary>Tests turn this on (KernelSwitches) to take the lane path for every supported shape and batch, not only where it is preferred.</summary>
    internal static bool Forced => KernelSwitches.Current.LanesForced;

    /// <summary>Tests turn this on (KernelSwitches) to run the lane kernels on a CPU without AVX-512, where .NET
    /// computes each Vector512 as two 256-bit halves: the same bits, slower, so production never takes it there.</summary>
    internal static bool EmulatedForTests => KernelSwitches.Current.LanesEmulated512;

    static bool Has512 => Vector512.IsHardwareAccelerated || EmulatedForTests;

    /// <summary>A 3×3 stride-1 padding-1 convolution on an AVX-512 machine.</summary>
    public static bool IsSupported(in ConvGeometry g) =>
        !Disabled && g.IsSame && g.Kh == 3 && g.Kw == 3 && Has512;

    /// <summary>Where the lane forward beats the NCHW direct kernel (and im2col + GEMM): with the Winograd kernel
    /// (ConvWinograd) images up to 32 wide, without it up to 14. Measured at batch 32, 2 threads, best of 20 interleaved
    /// runs, Winograd / direct lanes / NCHW direct forward: 64 channels at 7×7 0.56 / 0.78 / 1.25 ms, 14×14 1.33 /
    /// 2.06 / 2.23 ms, 32×32 9.1 / 15.5 / 15.6 ms; 32 channels at 28×28 2.17 / 2.77 / 2.87 ms; 128 channels at 16×16
    /// 7.0 / 13.0 / 11.6 ms, 8×8 1.6 / 3.3 ms, 4×4 0.66 / 0.91 ms. Without Winograd (or where it does not pay) the direct lane forward lost at
    /// 28×28 (2.27 against 2.11 ms NCHW), so the NCHW kernel kept the forward there.</summary>
    public static bool PreferForward(in ConvGeometry g, int cout, int batch) =>
        IsSupported(g) && (Forced || g.W <= (ConvWinograd.Pays(g, cout) ? 32 : 14) && FillsLanes(batch))
        || IsStrided(g) && (Forced || g.W <= 32 && FillsLanes(batch));

    /// <summary>A 3×3 stride-2 padding-1 convolution (improved-diffusion's Downsample) on an AVX-512 machine: its forward
    /// runs on <see cref="Forward"/> too, each output vector reading the input two pixels on per output pixel. Measured
    /// at batch 32, 2 threads, best of 20 interleaved runs against im2col + GEMM: 28×28 → 14×14 with 32 channels
    /// 1.17 against 2.66 ms, 14×14 → 7×7 with 64 channels 1.04 against 1.90 ms, 32×32 → 16×16 with 64 channels 5.2
    /// against 7.3 ms, 16×16 → 8×8 with 128 channels 3.7 against 6.3 ms.</summary>
    public static bool IsStrided(in ConvGeometry g) =>
        !Disabled && g.Stride == 2 && g.Pad == 1 && g.Kh == 3 && g.Kw == 3 && Has512;

    /// <summary>Where the lane dx and dW beat the direct ones: images at most 32 wide (forward+backward, 2 threads, best
    /// of 20-30 interleaved runs: 28×28 with 32 channels 6.7 ms against 8.5 ms direct; 32×32 with 64 channels 36.7
    /// against 41.0 ms; 16×16 with 128 channels 34.9 against 43.4 ms; 14×14: 11.2 against 13.6 ms; 7×7: 1.9 against
    /// 3.2 ms with im2col + GEMM; a cifar-s training step 2.22 s against 2.51 s with the lane backward up to 28 only).</summary>
    public static bool PreferBackward(in ConvGeometry g, int batch) => IsSupported(g) && (Forced || g.W <= 32 && FillsLanes(batch));

    /// <summary>At least 16 images, and at most a quarter of the lanes empty.</summary>
    static bool FillsLanes(int batch) => batch >= Lane && Lanes(batch) * 3 <= batch * 4;

    /// <summary>Bytes a group's padded lane tensor may take: a group is laid out, convolved and laid back before the next.
    /// Only a bound on the scratch memory of large batches: at batch 32 whole batches measured faster than groups of 16
    /// even where those fit L2 (28×28, 32 channels: 7.0 against 7.5 ms forward+backward).</summary>
    internal static int GroupBytes => KernelSwitches.Current.LanesGroupBytes;

    /// <summary>Images per group: the whole batch when its padded lane tensor of the larger channel count fits
    /// GroupBytes (16 MB), else the most whole Vector512s of images that do (at least 16).
    /// Depends only on the shapes, so results do not depend on the thread count.</summary>
    public static int GroupImages(int channels, int h, int w, int batch)
    {
        long perLane = (long)channels * (h + 2) * (w + 2) * sizeof(float);
        int fit = (int)Math.Max(1, GroupBytes / (perLane * Lane)) * Lane;
        return Lanes(batch) <= fit ? batch : fit;
    }

    /// <summary>The batch rounded up to whole Vector512s.</summary>
    public static int Lanes(int batch) => (batch + Lane - 1) / Lane * Lane;

    /// <summary>Floats of a padded lane tensor of C channels (or, with pad 0, an unpadded one).</summary>
    public static long Floats(int channels, int h, int w, int pad, int lanes) => (long)channels * (h + 2 * pad) * (w + 2 * pad) * lanes;

    // ---- NCHW ↔ lanes ----
    // Eight images × eight positions at a time through an 8×8 register transpose (Transpose8); the positions past the
    // last whole block of eight go one position (eight images) at a time, and the images past the last whole group of
    // eight one float at a time, as all of them do in the scalar reference (ScalarTransposes = true, for tests).
    // ToLanes may apply a group norm + SiLU on the way (LaneNorm): every value then goes through the same vector
    // arithmetic, whichever of these paths carries it.

    /// <summary>Tests turn this on (KernelSwitches) to run the one-float-at-a-time reference of the layout changes.</summary>
    internal static bool ScalarTransposes => KernelSwitches.Current.LanesScalarTransposes;

    /// <summary>Read once per call (the work items get it): the switch is looked up on the calling thread.</summary>
    static bool Blocked => Avx.IsSupported && !ScalarTransposes;

    /// <summary>xl[(c·Hp + y + pad)·Wp + x + pad][b] = x[b, c, y, x] with Hp = H + 2·pad, Wp = W + 2·pad; zero on the
    /// border and in lanes ≥ batch.</summary>
    public static void ToLanes(float* x, int batch, int channels, int h, int w, int pad, int lanes, float* xl) =>
        ToLanes(x, batch, channels, h, w, pad, h + 2 * pad, w + 2 * pad, lanes, xl);

    /// <summary>The same in planes of hp × wp (at least H + pad × W + pad): the image at (pad, pad), zero elsewhere.</summary>
    public static void ToLanes(float* x, int batch, int channels, int h, int w, int pad, int hp, int wp, int lanes, float* xl) =>
        ToLanes(x, batch, channels, h, w, pad, hp, wp, lanes, null, xl);

    /// <summary>The same with silu(group_norm(x)) in place of x when normTable is not null: the map of
    /// LaneNorm.Apply with the coefficients of LaneNorm.Table (the padding stays zero).</summary>
    public static void ToLanes(float* x, int batch, int channels, int h, int w, int pad, int hp, int wp, int lanes, float* normTable, float* xl) =>
        ToLanes(new ChannelPair(x, channels, null, 0), batch, h, w, pad, hp, wp, lanes, normTable, xl);

    /// <summary>The same from the channels of two NCHW tensors side by side (their concatenation, not made).</summary>
    public static void ToLanes(in ChannelPair x, int batch, int h, int w, int pad, int hp, int wp, int lanes, float* normTable, float* xl)
    {
        if (normTable == null) ToLanes(x, batch, h, w, 1, pad, hp, wp, lanes, default(Plain), xl);
        else ToLanes(x, batch, h, w, 1, pad, hp, wp, lanes, new NormSilu(normTable, lanes), xl);
    }

    /// <summary>The nearest-neighbour ×2 upsampling of x (B, C, H, W) as a lane tensor of 2H × 2W images in planes of
    /// hp × wp: each value lands on its four pixels (the upsampled tensor is never made).</summary>
    public static void ToLanesUpsampled(float* x, int batch, int channels, int h, int w, int pad, int hp, int wp, int lanes, float* xl) =>
        ToLanes(new ChannelPair(x, channels, null, 0), batch, h, w, 2, pad, hp, wp, lanes, default(Plain), xl);

    /// <summary>What ToLanes does to each value on its way into lane b of channel c: At gives the coefficients of eight
    /// images, which Map applies to two positions of them at once.</summary>
    interface ILaneMap
    {
        LaneNorm.Coefficients At(int c, int b);
        Vector512<float> Map(Vector512<float> v, in LaneNorm.Coefficients k);
        float Map(float v, int c, int b);
    }

    readonly struct Plain : ILaneMap
    {
        public LaneNorm.Coefficients At(int c, int b) => default;
        public Vector512<float> Map(Vector512<float> v, in LaneNorm.Coefficients k) => v;
        public float Map(float v, int c, int b) => v;
    }

    readonly struct NormSilu(float* table, int lanes) : ILaneMap
    {
        public LaneNorm.Coefficients At(int c, int b) => LaneNorm.Coefficients.LoadTwice(table, lanes, c, b);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Map(Vector512<float> v, in LaneNorm.Coefficients k) => LaneNorm.Apply(v, k);
        public float Map(float v, int c, int b) => LaneNorm.Apply(v, table, lanes, c, b);
    }

    /// <summary>h × w images each scaled up by <paramref name="scale"/> (1, or 2 for nearest-neighbour upsampling): pixel p
    /// goes to the scale² padded positions pos[p·scale² ..].</summary>
    static void ToLanes<TMap>(in ChannelPair x, int batch, int h, int w, int scale, int pad, int hp, int wp, int lanes, TMap map, float* xl)
        where TMap : struct, ILaneMap
    {
        int channels = x.Channels;
        int hw = h * w, copies = scale * scale;
        int[] posBuf = ArrayPool<int>.Shared.Rent(hw * copies);
        try
        {
            fixed (int* pos = posBuf)
            {
                for (int p = 0; p < hw; p++)
                    for (int j = 0; j < copies; j++)
                        pos[p * copies + j] = (p / w * scale + j / scale + pad) * wp + p % w * scale + j % scale + pad;
                var work = new ToLanesWork<TMap>(x, batch, h, w, scale, pad, hp, wp, lanes, pos, map, xl, Blocked);
                ParallelFor.Run(channels, work);
            }
        }
        finally { ArrayPool<int>.Shared.Return(posBuf); }
    }

    readonly struct ToLanesWork<TMap>(ChannelPair x, int batch, int h, int w, int scale, int pad, int hp, int wp, int lanes, int* pos, TMap map, float* xl, bool blocked)
        : IWorkItem where TMap : struct, ILaneMap
    {
        public void Invoke(int c)
        {
            int hw = h * w, copies = scale * scale;
            float* dst = xl + (long)c * hp * wp * lanes;
            ClearPadding(dst);
            float* src = x.Plane(c, hw, out long imageStride);                      // image 0, channel c
            int b = 0;
            if (blocked)
                for (; b + 8 <= batch; b += 8)
                {
                    float* s = src + b * imageStride;
                    var k = map.At(c, b);
                    int p = 0;
                    for (; p + 8 <= hw; p += 8)
                    {
                        Transpose8.LoadTransposed(s + p, imageStride, out var r0, out var r1, out var r2, out var r3,
                            out var r4, out var r5, out var r6, out var r7);  // r_k: position p + k
                        float* d = dst + b;
                        Put(d, p, r0, r1, k); Put(d, p + 2, r2, r3, k); Put(d, p + 4, r4, r5, k); Put(d, p + 6, r6, r7, k);
                    }
                    for (; p < hw; p++)
                    {
                        var v = Vector256.Create(s[p], s[imageStride + p], s[2 * imageStride + p], s[3 * imageStride + p],
                            s[4 * imageStride + p], s[5 * imageStride + p], s[6 * imageStride + p], s[7 * imageStride + p]);
                        var m = map.Map(Vector512.Create(v, v), k).GetLower();
                        for (int j = 0; j < copies; j++) m.Store(dst + (long)pos[p * copies + j] * lanes + b);
                    }
                }
            for (; b < batch; b++)
            {
                float* s = src + b * imageStride;
                for (int p = 0; p < hw; p++)
                {
                    float m = map.Map(s[p], c, b);
                    for (int j = 0; j < copies; j++) dst[(long)pos[p * copies + j] * lanes + b] = m;
                }
            }
        }

        /// <summary>The eight images of positions p and p + 1, mapped, to their places.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Put(float* d, int p, Vector256<float> v0, Vector256<float> v1, in LaneNorm.Coefficients k)
        {
            var m = map.Map(Vector512.Create(v0, v1), k);
            var lo = m.GetLower(); var hi = m.GetUpper();
            if (scale == 1)
            {
                lo.Store(d + (long)pos[p] * lanes);
                hi.Store(d + (long)pos[p + 1] * lanes);
                return;
            }
            for (int j = 0; j < 4; j++)
            {
                lo.Store(d + (long)pos[p * 4 + j] * lanes);
                hi.Store(d + (long)pos[(p + 1) * 4 + j] * lanes);
            }
        }

        /// <summary>Zeroes what the images do not write: the border rows and columns, and every lane ≥ batch (the whole
        /// plane then, as the spare lanes of the image rows need it too).</summary>
        void ClearPadding(float* dst)
        {
            if (batch < lanes)
            {
                new Span<float>(dst, hp * wp * lanes).Clear();
                return;
            }
            int ih = h * scale, iw = w * scale;                                     // the image as laid out
            long row = (long)wp * lanes;
            new Span<float>(dst, (int)(pad * row)).Clear();                                          // top rows
            new Span<float>(dst + (pad + ih) * row, (int)((hp - pad - ih) * row)).Clear();           // bottom rows
            for (int y = pad; y < pad + ih; y++)
            {
                new Span<float>(dst + y * row, pad * lanes).Clear();                                  // left columns
                new Span<float>(dst + y * row + (long)(pad + iw) * lanes, (wp - pad - iw) * lanes).Clear(); // right columns
            }
        }
    }

    /// <summary>y[b, c, p] = yl[c·HW + p][b] + bias[c] (bias may be null), or += yl[…] with accumulate (bias ignored).</summary>
    public static void FromLanes(float* yl, int batch, int channels, int hw, int lanes, float* bias, float* y, bool accumulate) =>
        FromLanes(yl, batch, channels, hw, lanes, bias, null, y, accumulate);

    /// <summary>The same with a residual r (same layout as y, may be null) added after the bias:
    /// y[b, c, p] = r[b, c, p] + (yl[c·HW + p][b] + bias[c]), the bits of adding r to the plain result.</summary>
    public static void FromLanes(float* yl, int batch, int channels, int hw, int lanes, float* bias, float* residual, float* y, bool accumulate)
    {
        var work = new FromLanesWork(yl, batch, channels, hw, lanes, bias, residual, y, accumulate, Blocked);
        ParallelFor.Run(channels, work);
    }

    readonly struct FromLanesWork(float* yl, int batch, int channels, int hw, int lanes, float* bias, float* residual, float* y, bool accumulate, bool blocked) : IWorkItem
    {
        public void Invoke(int c)
        {
            float* src = yl + (long)c * hw * lanes;
            float bv = bias == null ? 0f : bias[c];
            long imageStride = (long)channels * hw;
            float* dst = y + (long)c * hw;                                          // image 0, channel c
            int b = 0;
            if (blocked)
            {
                var bias8 = Vector256.Create(bv);
                for (; b + 8 <= batch; b += 8)
                {
                    float* d = dst + b * imageStride;
                    int p = 0;
                    for (; p + 8 <= hw; p += 8)
                    {
                        Transpose8.LoadTransposed(src + (long)p * lanes + b, lanes, out var r0, out var r1, out var r2, out var r3,
                            out var r4, out var r5, out var r6, out var r7);  // r_k: image b + k
                        Put(d + p, r0, bias8); Put(d + imageStride + p, r1, bias8);
                        Put(d + 2 * imageStride + p, r2, bias8); Put(d + 3 * imageStride + p, r3, bias8);
                        Put(d + 4 * imageStride + p, r4, bias8); Put(d + 5 * imageStride + p, r5, bias8);
                        Put(d + 6 * imageStride + p, r6, bias8); Put(d + 7 * imageStride + p, r7, bias8);
                    }
                    for (; p < hw; p++)
                        for (int k = 0; k < 8; k++)
                            Put(d + k * imageStride + p, src[(long)p * lanes + b + k], bv);
                }
            }
            for (; b < batch; b++)
            {
                float* d = dst + b * imageStride, s = src + b;
                for (int p = 0; p < hw; p++) Put(d + p, s[(long)p * lanes], bv);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Put(float* d, Vector256<float> v, Vector256<float> bias8)
        {
            if (accumulate) (Vector256.Load(d) + v).Store(d);
            else if (residual != null) (Vector256.Load(d + (residual - y)) + (v + bias8)).Store(d);
            else (v + bias8).Store(d);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Put(float* d, float v, float bv)
        {
            if (accumulate) *d += v;
            else if (residual != null) *d = d[residual - y] + (v + bv);
            else *d = v + bv;
        }
    }

    // ---- forward (and dx) ----

    /// <summary>yl (outC, H·W lanes, unpadded) = conv(xl, wpk): xl a pad-1 lane tensor of g.C channels, wpk from
    /// ConvDirect.PackWeights (8-channel blocks).</summary>
    public static void Forward(float* xl, in ConvGeometry g, int lanes, float* wpk, int outC, float* yl)
    {
        int blocks = (outC + OutBlock - 1) / OutBlock;
        int vectors = g.Ho * g.Wo * (lanes / Lane), chunks = (vectors + ChunkVectors - 1) / ChunkVectors;
        var work = new ForwardWork(xl, g, lanes, wpk, outC, yl);
        ParallelFor.Run(blocks * chunks, work);
    }

    /// <summary>Output vectors per work item: 5 tiles, about one row of a 7×7 image of 32 lanes.</summary>
    const int ChunkVectors = 15;

    /// <summary>Bytes of input one channel block of a work item may touch, so that it stays in L1 while the item's
    /// tiles all walk it (a tile over every channel at once would stream its ~100 KB from L2 for each tile).</summary>
    const int ChannelBlockBytes = 24 << 10;

    readonly struct ForwardWork(float* xl, ConvGeometry g, int lanes, float* wpk, int outC, float* yl) : IWorkItem
    {
        public void Invoke(int index)
        {
            // chunk-major: consecutive items (on both threads) read the same input rows with another weight block
            int blocks = (outC + OutBlock - 1) / OutBlock, chunk = index / blocks, ob = index % blocks;
            int v = lanes / Lane, vectors = g.Ho * g.Wo * v, s = g.Stride;
            int u0 = chunk * ChunkVectors, u1 = Math.Min(vectors, u0 + ChunkVectors);
            int rows = Math.Min(OutBlock, outC - ob * OutBlock);
            // input the chunk reads per channel: its output rows plus the two halo rows, each as wide as the
            // chunk's positions (at most a row) plus the two halo columns, all lanes
            int p0 = u0 / v, p1 = (u1 - 1) / v, outRows = p1 / g.Wo - p0 / g.Wo + 1;
            int cols = (Math.Min(g.Wo, p1 - p0 + 1) - 1) * s + 3;
            long channelBytes = (long)((outRows - 1) * s + 3) * cols * lanes * sizeof(float);
            int cb = (int)Math.Clamp(ChannelBlockBytes / channelBytes, 1, g.C);
            int plane = (g.H + 2) * (g.W + 2) * lanes;
            float* w = wpk + (long)ob * g.C * 9 * OutBlock;
            float* y = yl + (long)ob * OutBlock * g.Ho * g.Wo * lanes;
            // tap-(0, 0) input offsets of the chunk's vectors, the missing ones of a short last tile repeating the last
            long* off = stackalloc long[ChunkVectors + 2];
            for (int k = 0; k < ChunkVectors + 2; k++) off[k] = InputOffset(Math.Min(u0 + k, u1 - 1), v, g.Wo, s, g.W + 2, lanes);
            for (int c0 = 0; c0 < g.C; c0 += cb)
            {
                int cn = Math.Min(cb, g.C - c0);
                for (int u = u0; u < u1; u += 3)
                    Tile(xl + (long)c0 * plane, cn, g, lanes, w + (long)c0 * 9 * OutBlock, y, rows, u, Math.Min(3, u1 - u), off + (u - u0), accumulate: c0 > 0);
            }
        }
    }

    /// <summary>Offset (floats) of output vector u's tap-(0, 0) input in a padded channel plane, for outputs wo wide
    /// at stride s.</summary>
    static long InputOffset(int u, int v, int wo, int s, int wp, int lanes)
    {
        int pos = u / v, oy = pos / wo, ox = pos % wo;
        return ((long)oy * s * wp + ox * s) * lanes + (u % v) * Lane;
    }

    /// <summary>y[r, u .. u + count) (vectors of an unpadded lane plane, rows H·W·lanes apart) = (or += with
    /// accumulate) Σ_(c &lt; cin) Σ_tap w[c][tap][r] · xl[c, tap-shifted input of u ..], off[k] being vector u + k's
    /// tap-(0, 0) input offset; count is 1 to 3 (the missing vectors repeat the last one and are not stored).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile(float* xl, int cin, in ConvGeometry g, int lanes, float* w0, float* y, int rows, int u, int count, long* off, bool accumulate)
    {
        int wp = g.W + 2, plane = (g.H + 2) * wp * lanes;
        long o0 = off[0], o1 = off[1], o2 = off[2];
        long rowStep = (long)wp * lanes;
        var a00 = Vector512<float>.Zero; var a01 = a00; var a02 = a00; var a10 = a00; var a11 = a00; var a12 = a00;
        var a20 = a00; var a21 = a00; var a22 = a00; var a30 = a00; var a31 = a00; var a32 = a00;
        var a40 = a00; var a41 = a00; var a42 = a00; var a50 = a00; var a51 = a00; var a52 = a00;
        var a60 = a00; var a61 = a00; var a62 = a00; var a70 = a00; var a71 = a00; var a72 = a00;
        float* w = w0;
        for (int c = 0; c < cin; c++)
        {
            float* xc = xl + (long)c * plane;
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++, w += OutBlock)
                {
                    float* s = xc + i * rowStep + j * lanes;
                    var x0 = Vector512.Load(s + o0);
                    var x1 = Vector512.Load(s + o1);
                    var x2 = Vector512.Load(s + o2);
                    var b = Vector512.Create(w[0]); a00 = Vector512.FusedMultiplyAdd(b, x0, a00); a01 = Vector512.FusedMultiplyAdd(b, x1, a01); a02 = Vector512.FusedMultiplyAdd(b, x2, a02);
                    b = Vector512.Create(w[1]); a10 = Vector512.FusedMultiplyAdd(b, x0, a10); a11 = Vector512.FusedMultiplyAdd(b, x1, a11); a12 = Vector512.FusedMultiplyAdd(b, x2, a12);
                    b = Vector512.Create(w[2]); a20 = Vector512.FusedMultiplyAdd(b, x0, a20); a21 = Vector512.FusedMultiplyAdd(b, x1, a21); a22 = Vector512.FusedMultiplyAdd(b, x2, a22);
                    b = Vector512.Create(w[3]); a30 = Vector512.FusedMultiplyAdd(b, x0, a30); a31 = Vector512.FusedMultiplyAdd(b, x1, a31); a32 = Vector512.FusedMultiplyAdd(b, x2, a32);
                    b = Vector512.Create(w[4]); a40 = Vector512.FusedMultiplyAdd(b, x0, a40); a41 = Vector512.FusedMultiplyAdd(b, x1, a41); a42 = Vector512.FusedMultiplyAdd(b, x2, a42);
                    b = Vector512.Create(w[5]); a50 = Vector512.FusedMultiplyAdd(b, x0, a50); a51 = Vector512.FusedMultiplyAdd(b, x1, a51); a52 = Vector512.FusedMultiplyAdd(b, x2, a52);
                    b = Vector512.Create(w[6]); a60 = Vector512.FusedMultiplyAdd(b, x0, a60); a61 = Vector512.FusedMultiplyAdd(b, x1, a61); a62 = Vector512.FusedMultiplyAdd(b, x2, a62);
                    b = Vector512.Create(w[7]); a70 = Vector512.FusedMultiplyAdd(b, x0, a70); a71 = Vector512.FusedMultiplyAdd(b, x1, a71); a72 = Vector512.FusedMultiplyAdd(b, x2, a72);
                }
        }
        long rowFloats = (long)g.Ho * g.Wo * lanes;
        float* d = y + (long)u * Lane;
        if (accumulate)
        {
            Add3(d, ref a00, ref a01, ref a02, count); if (rows > 1) Add3(d + rowFloats, ref a10, ref a11, ref a12, count);
            if (rows > 2) Add3(d + 2 * rowFloats, ref a20, ref a21, ref a22, count); if (rows > 3) Add3(d + 3 * rowFloats, ref a30, ref a31, ref a32, count);
            if (rows > 4) Add3(d + 4 * rowFloats, ref a40, ref a41, ref a42, count); if (rows > 5) Add3(d + 5 * rowFloats, ref a50, ref a51, ref a52, count);
            if (rows > 6) Add3(d + 6 * rowFloats, ref a60, ref a61, ref a62, count); if (rows > 7) Add3(d + 7 * rowFloats, ref a70, ref a71, ref a72, count);
        }
        Store3(d, a00, a01, a02, count); if (rows > 1) Store3(d + rowFloats, a10, a11, a12, count);
        if (rows > 2) Store3(d + 2 * rowFloats, a20, a21, a22, count); if (rows > 3) Store3(d + 3 * rowFloats, a30, a31, a32, count);
        if (rows > 4) Store3(d + 4 * rowFloats, a40, a41, a42, count); if (rows > 5) Store3(d + 5 * rowFloats, a50, a51, a52, count);
        if (rows > 6) Store3(d + 6 * rowFloats, a60, a61, a62, count); if (rows > 7) Store3(d + 7 * rowFloats, a70, a71, a72, count);
    }

    /// <summary>v_k += d[k·16 ..] for the count stored vectors (the earlier channel blocks' partial sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Add3(float* d, ref Vector512<float> v0, ref Vector512<float> v1, ref Vector512<float> v2, int count)
    {
        v0 += Vector512.Load(d);
        if (count > 1) v1 += Vector512.Load(d + Lane);
        if (count > 2) v2 += Vector512.Load(d + 2 * Lane);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store3(float* d, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, int count)
    {
        v0.Store(d);
        if (count > 1) v1.Store(d + Lane);
        if (count > 2) v2.Store(d + 2 * Lane);
    }

    // ---- weight gradient ----

    /// <summary>dW (cout, g.C, 3, 3) += Σ_(y, x) Σ_b dyl[o, y + 1, x + 1][b] · xl[c, y + i, x + j][b]: xl and dyl both pad-1
    /// lane tensors (g.C and cout channels).</summary>
    public static void WeightGrad(float* xl, float* dyl, in ConvGeometry g, int lanes, int cout, float* dw)
    {
        int triples = (cout + 2) / 3;
        var work = new WeightGradWork(xl, dyl, g, lanes, cout, dw);
        ParallelFor.Run(g.C * triples, work);
    }

    readonly struct WeightGradWork(float* xl, float* dyl, ConvGeometry g, int lanes, int cout, float* dw) : IWorkItem
    {
        /// <summary>dw[o .. o + 3, c] for item (c, output triple); consecutive items share the dy triple.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int index)
        {
            int cin = g.C, c = index % cin, o = index / cin * 3, rows = Math.Min(3, cout - o);
            int wp = g.W + 2, plane = (g.H + 2) * wp * lanes, rowFloats = wp * lanes, runFloats = g.W * lanes;
            float* xc = xl + (long)c * plane;
            float* d0p = dyl + (long)o * plane + rowFloats + lanes;                 // dy at padded (1, 1)
            float* d1p = rows > 1 ? d0p + plane : d0p, d2p = rows > 2 ? d0p + 2 * plane : d0p;
            var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0; var a8 = a0;
            var b0 = a0; var b1 = a0; var b2 = a0; var b3 = a0; var b4 = a0; var b5 = a0; var b6 = a0; var b7 = a0; var b8 = a0;
            var c0 = a0; var c1 = a0; var c2 = a0; var c3 = a0; var c4 = a0; var c5 = a0; var c6 = a0; var c7 = a0; var c8 = a0;
            for (int y = 0; y < g.H; y++)
            {
                long row = (long)y * rowFloats;
                float* dr0 = d0p + row, dr1 = d1p + row, dr2 = d2p + row, s0 = xc + row;
                for (int q = 0; q < runFloats; q += Lane)
                {
                    var d0 = Vector512.Load(dr0 + q);
                    var d1 = Vector512.Load(dr1 + q);
                    var d2 = Vector512.Load(dr2 + q);
                    float* s = s0 + q;
                    var x = Vector512.Load(s);
                    a0 = Vector512.FusedMultiplyAdd(d0, x, a0); b0 = Vector512.FusedMultiplyAdd(d1, x, b0); c0 = Vector512.FusedMultiplyAdd(d2, x, c0);
                    x = Vector512.Load(s + lanes);
                    a1 = Vector512.FusedMultiplyAdd(d0, x, a1); b1 = Vector512.FusedMultiplyAdd(d1, x, b1); c1 = Vector512.FusedMultiplyAdd(d2, x, c1);
                    x = Vector512.Load(s + 2 * lanes);
                    a2 = Vector512.FusedMultiplyAdd(d0, x, a2); b2 = Vector512.FusedMultiplyAdd(d1, x, b2); c2 = Vector512.FusedMultiplyAdd(d2, x, c2);
                    s += rowFloats;
                    x = Vector512.Load(s);
                    a3 = Vector512.FusedMultiplyAdd(d0, x, a3); b3 = Vector512.FusedMultiplyAdd(d1, x, b3); c3 = Vector512.FusedMultiplyAdd(d2, x, c3);
                    x = Vector512.Load(s + lanes);
                    a4 = Vector512.FusedMultiplyAdd(d0, x, a4); b4 = Vector512.FusedMultiplyAdd(d1, x, b4); c4 = Vector512.FusedMultiplyAdd(d2, x, c4);
                    x = Vector512.Load(s + 2 * lanes);
                    a5 = Vector512.FusedMultiplyAdd(d0, x, a5); b5 = Vector512.FusedMultiplyAdd(d1, x, b5); c5 = Vector512.FusedMultiplyAdd(d2, x, c5);
                    s += rowFloats;
                    x = Vector512.Load(s);
                    a6 = Vector512.FusedMultiplyAdd(d0, x, a6); b6 = Vector512.FusedMultiplyAdd(d1, x, b6); c6 = Vector512.FusedMultiplyAdd(d2, x, c6);
                    x = Vector512.Load(s + lanes);
                    a7 = Vector512.FusedMultiplyAdd(d0, x, a7); b7 = Vector512.FusedMultiplyAdd(d1, x, b7); c7 = Vector512.FusedMultiplyAdd(d2, x, c7);
                    x = Vector512.Load(s + 2 * lanes);
                    a8 = Vector512.FusedMultiplyAdd(d0, x, a8); b8 = Vector512.FusedMultiplyAdd(d1, x, b8); c8 = Vector512.FusedMultiplyAdd(d2, x, c8);
                }
            }
            ConvDirect.Reduce9(dw + ((long)o * cin + c) * 9, add: true, a0, a1, a2, a3, a4, a5, a6, a7, a8);
            if (rows > 1) ConvDirect.Reduce9(dw + ((long)(o + 1) * cin + c) * 9, add: true, b0, b1, b2, b3, b4, b5, b6, b7, b8);
            if (rows > 2) ConvDirect.Reduce9(dw + ((long)(o + 2) * cin + c) * 9, add: true, c0, c1, c2, c3, c4, c5, c6, c7, c8);
        }
    }
}

/// <summary>The channels of one NCHW batch, or of two side by side (first the C1 of x1, then the C2 of x2): a channel
/// concatenation read in place.</summary>
internal readonly unsafe struct ChannelPair(float* x1, int c1, float* x2, int c2)
{
    public int Channels => c1 + c2;
    public int First => c1;

    /// <summary>The same channels from image <paramref name="images"/> on.</summary>
    public ChannelPair Skip(int images, int hw) =>
        new(x1 + (long)images * c1 * hw, c1, x2 == null ? null : x2 + (long)images * c2 * hw, c2);

    /// <summary>Channel c of image 0 (planes of hw floats), and the floats from one image to the next.</summary>
    public float* Plane(int c, int hw, out long imageStride)
    {
        if (c < c1) { imageStride = (long)c1 * hw; return x1 + (long)c * hw; }
        imageStride = (long)c2 * hw;
        return x2 + (long)(c - c1) * hw;
    }
}

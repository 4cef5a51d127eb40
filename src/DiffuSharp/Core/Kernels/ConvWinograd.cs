// Winograd F(2×2, 3×3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) on the
// lane tensors of ConvLanes: the forward of 3×3 "same" convolutions, and dx (the same with the flipped, transposed
// kernel), with the batch in the vector lanes.
//
// Each 2×2 block of outputs ("tile") of an image needs the 4×4 input patch d around it. In one dimension,
// y0 = g0·d0 + g1·d1 + g2·d2 and y1 = g0·d1 + g1·d2 + g2·d3 come from four products instead of six:
//   U = G·g = (g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2),  V = Bᵀ·d = (d0 − d2, d1 + d2, d2 − d1, d1 − d3),
//   y = Aᵀ·(U ⊙ V) = (M0 + M1 + M2, M1 − M2 − M3).
// In two dimensions V = Bᵀ d B and U = G g Gᵀ are 4×4, and a tile's outputs are Aᵀ (Σ_c U_c ⊙ V_c) A: 16 products
// per input channel for 4 outputs instead of 36 — 2.25 times fewer multiply-adds. The sum over input channels is, for
// each of the 16 positions of the 4×4, a small matrix product (tiles × C_in)·(C_in × C_out), which runs as the direct
// kernels do: 8 output channels × 3 vectors of tiles in 24 accumulators, per input channel 3 loads and 8 broadcast
// weights. The transforms are sums and halves (U computed in double), so the result differs from the direct
// convolution by float rounding alone: measured against a double-precision reference, at most ~1e-6 of the outputs'
// scale (ConvWinogradTests). F(4×4, 3×3) (2.25 products per output instead of 4) was tried and dropped: its transforms'
// factors of up to 8 made the error ~2e-5 of the scale, and it was no faster here (14×14: 1.81 against 1.29 ms,
// 32×32 8.1 against 8.4 ms; the larger patches cost what the products saved).
//
// In the lane layout each pixel is a Vector512 of 16 images, so the transforms are plain vector additions with no
// shuffles. A "unit" is one tile of one vector of lanes; a work item is a block of units: it transforms their input
// (all channels, 16 positions) into an L2-resident buffer, runs the 16 products position by position (a position's
// slice of the block fits L1), and transforms the results into the output lane tensor. Every output is the same sum
// in the same order whatever the block size or thread count, so results do not depend on either.
//
// The input lane tensor is padded by 1 on the top and left and, for odd sizes, by 2 on the bottom and right
// (PaddedSize), so every tile's patch lies inside it; outputs past the image are not stored.

namespace DiffuSharp.Kernels;

internal static unsafe class ConvWinograd
{
    const int OutBlock = 8, Lane = 16, Positions = 16;

    /// <summary>Tests turn this on (KernelSwitches) to turn the Winograd path off (and compare it with the direct lane kernel).</summary>
    internal static bool Disabled => KernelSwitches.Current.WinogradDisabled;

    /// <summary>A 3×3 stride-1 padding-1 convolution where the lane kernels run (AVX-512).</summary>
    public static bool IsSupported(in ConvGeometry g) => !Disabled && ConvLanes.IsSupported(g);

    /// <summary>Where Winograd beats the direct lane kernel: both channel counts at least 8. With one input channel
    /// (a UNet's first convolution) the products are a single multiply-add and the transforms are all the work; with
    /// one output channel (its last) 7 of every 8 products are padding (mnist-s, batch 32, 28×28: 1 → 32 took 1.35 ms
    /// against 0.24 ms on the NCHW direct kernel, 32 → 1 1.02 against 0.78 ms).</summary>
    public static bool Pays(in ConvGeometry g, int outC) => IsSupported(g) && Math.Min(g.C, outC) >= OutBlock;

    /// <summary>Height (or width) of the padded lane plane for n pixels: one row of padding before, and after the last
    /// tile's patch (two for odd n).</summary>
    public static int PaddedSize(int n) => (n + 1) / 2 * 2 + 2;

    static int Blocks(int outC) => (outC + OutBlock - 1) / OutBlock;

    /// <summary>Floats of the transformed weights for outC output channels from inC input channels.</summary>
    public static int TransformedWeightFloats(int outC, int inC) => Positions * Blocks(outC) * OutBlock * inC;

    /// <summary>wt[pos][ob][c][r] = (G g Gᵀ)[pos] for g = w[ob·8 + r, c] (zero past outC). With flipTranspose the roles
    /// swap for dx, as in ConvDirect.PackWeights: outputs are w's input channels and the kernel is mirrored,
    /// g[i, j] = w[o, ob·8 + r, 2 − i, 2 − j] for input channel o.</summary>
    public static void TransformWeights(float* w, int cout, int cin, bool flipTranspose, float* wt)
    {
        int outC = flipTranspose ? cin : cout;
        ParallelFor.Run(Blocks(outC), new WeightWork(w, cout, cin, flipTranspose, wt));
    }

    readonly struct WeightWork(float* w, int cout, int cin, bool flipTranspose, float* wt) : IWorkItem
    {
        /// <summary>One block of 8 output channels, the 8 kernels of an input channel at a time as the lanes of a
        /// Vector512 of doubles; written position by position, 8 floats each.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke(int ob)
        {
            int outC = flipTranspose ? cin : cout, inC = flipTranspose ? cout : cin, blocks = Blocks(outC);
            long pos = (long)blocks * inC * OutBlock;                               // floats between positions
            double* k = stackalloc double[9 * OutBlock];                            // k[tap][r]
            var t = stackalloc Vector512<double>[4 * 3];                            // G k: 4 rows of 3
            var u = stackalloc Vector512<double>[4];                                // a row of G k Gᵀ
            for (int c = 0; c < inC; c++)
            {
                for (int r = 0; r < OutBlock; r++)
                {
                    int o = ob * OutBlock + r;
                    for (int tap = 0; tap < 9; tap++)
                        k[tap * OutBlock + r] = o >= outC ? 0.0
                            : flipTranspose ? w[((long)c * cin + o) * 9 + (8 - tap)] : w[((long)o * cin + c) * 9 + tap];
                }
                for (int j = 0; j < 3; j++)
                {
                    var k0 = Vector512.Load(k + j * OutBlock);
                    var k1 = Vector512.Load(k + (3 + j) * OutBlock);
                    var k2 = Vector512.Load(k + (6 + j) * OutBlock);
                    Kernel4(k0, k1, k2, t + j, 3);
                }
                for (int i = 0; i < 4; i++)
                {
                    Kernel4(t[3 * i], t[3 * i + 1], t[3 * i + 2], u, 1);
                    float* d = wt + ((long)ob * inC + c) * OutBlock + i * 4 * pos;
                    for (int j = 0; j < 4; j++)
                        Vector512.Narrow(u[j], Vector512<double>.Zero).GetLower().Store(d + j * pos);
                }
            }
        }

        /// <summary>G·(k0, k1, k2): (k0, (k0 + k1 + k2)/2, (k0 − k1 + k2)/2, k2), into dst[0, step, ...].</summary>
        static void Kernel4(Vector512<double> k0, Vector512<double> k1, Vector512<double> k2, Vector512<double>* dst, int step)
        {
            var half = Vector512.Create(0.5);
            dst[0] = k0;
            dst[step] = (k0 + k1 + k2) * half;
            dst[2 * step] = (k0 - k1 + k2) * half;
            dst[3 * step] = k2;
        }
    }

    /// <summary>yl (outC, H·W lanes, unpadded) = conv(xl, w): xl a lane tensor of g.C channels, padded to
    /// PaddedSize(H) × PaddedSize(W) with the image at (1, 1); wt from <see cref="TransformWeights"/>.</summary>
    public static void Forward(float* xl, in ConvGeometry g, int lanes, float* wt, int outC, float* yl)
    {
        int units = (g.H + 1) / 2 * ((g.W + 1) / 2) * (lanes / Lane), block = BlockUnits(g.C, units);
        ParallelFor.Run((units + block - 1) / block, new ForwardWork(xl, g, lanes, wt, outC, yl, units, block));
    }

    /// <summary>Bytes of one position's slice of a block's transformed input (C_in × block vectors), read once per
    /// output block: sized to stay in L1.</summary>
    const int SliceBytes = 32 << 10;

    /// <summary>Units per work item: whole triples, as many as keep a position's slice within SliceBytes, but at
    /// least four items so both threads stay busy. Depends only on the shapes.</summary>
    static int BlockUnits(int cin, int units)
    {
        int triples = Math.Max(1, SliceBytes / (cin * 3 * Lane * sizeof(float)));
        triples = Math.Min(triples, Math.Max(1, (units + 2) / 3 / 4));
        return 3 * triples;
    }

    /// <summary>Floats between positions in a block's buffers: the channels' slices and one vector more, so that the
    /// positions of a unit (written and read together by the transforms) do not share an L1 set, as they would at a
    /// multiple of 4 KB apart.</summary>
    static long PositionStride(int channels, int block) => (long)channels * block * Lane + Lane;

    readonly struct ForwardWork(float* xl, ConvGeometry g, int lanes, float* wt, int outC, float* yl, int units, int block) : IWorkItem
    {
        public void Invoke(int item)
        {
            int cin = g.C, blocks = Blocks(outC), outCPad = blocks * OutBlock;
            int u0 = item * block, n = Math.Min(block, units - u0), padded = (n + 2) / 3 * 3;
            long slice = (long)block * Lane;                                   // floats between channels in a position's slice
            long vPos = PositionStride(cin, block), mPos = PositionStride(outCPad, block);
            using var vBuf = new AlignedScratch(Positions * vPos);
            using var mBuf = new AlignedScratch(Positions * mPos);
            float* vb = vBuf.Pointer, mb = mBuf.Pointer;
            TransformInput(vb, u0, n, padded, vPos);
            for (int p = 0; p < Positions; p++)
                for (int ob = 0; ob < blocks; ob++)
                {
                    float* w = wt + ((long)p * blocks + ob) * cin * OutBlock;
                    float* mo = mb + p * mPos + ob * OutBlock * slice;
                    for (int k = 0; k < padded; k += 3)
                        Product(vb + p * vPos + k * Lane, cin, slice, w, mo + k * Lane);
                }
            TransformOutput(mb, u0, n, outCPad, mPos);
        }

        /// <summary>Unit u's tile: its first output row and column, and the offset (floats) of its vector of lanes.</summary>
        int TileOrigin(int u, out int y, out int x)
        {
            int v = lanes / Lane, tw = (g.W + 1) / 2, t = u / v;
            y = t / tw * 2; x = t % tw * 2;
            return u % v * Lane;
        }

        /// <summary>vb[pos][c][k] = (Bᵀ d B)[pos] for the 4×4 patch d of unit u0 + k, zero for k ≥ n. Channel-major, so
        /// consecutive units write neighbouring vectors; the units' patch offsets are worked out once.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void TransformInput(float* vb, int u0, int n, int padded, long pos)
        {
            long row = (long)PaddedSize(g.W) * lanes, plane = PaddedSize(g.H) * row, slice = (long)block * Lane;
            long* at = stackalloc long[n];                                   // patch top left of unit u0 + k, channel 0
            for (int k = 0; k < n; k++)
            {
                int lane = TileOrigin(u0 + k, out int y, out int x);
                at[k] = y * row + (long)x * lanes + lane;
            }
            for (int c = 0; c < g.C; c++)
                for (int k = 0; k < padded; k++)
                {
                    float* d = vb + c * slice + k * Lane;
                    if (k >= n)
                    {
                        for (int p = 0; p < Positions; p++) Vector512<float>.Zero.Store(d + p * pos);
                        continue;
                    }
                    float* s = xl + c * plane + at[k];
                    // Bᵀ d: column by column down the rows, (d0 − d2, d1 + d2, d2 − d1, d1 − d3)
                    Column4(s, row, out var r00, out var r10, out var r20, out var r30);
                    Column4(s + lanes, row, out var r01, out var r11, out var r21, out var r31);
                    Column4(s + 2 * lanes, row, out var r02, out var r12, out var r22, out var r32);
                    Column4(s + 3 * lanes, row, out var r03, out var r13, out var r23, out var r33);
                    // (Bᵀ d) B: the same along each row
                    Row4(d, pos, r00, r01, r02, r03);
                    Row4(d + 4 * pos, pos, r10, r11, r12, r13);
                    Row4(d + 8 * pos, pos, r20, r21, r22, r23);
                    Row4(d + 12 * pos, pos, r30, r31, r32, r33);
                }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Column4(float* s, long row, out Vector512<float> t0, out Vector512<float> t1, out Vector512<float> t2, out Vector512<float> t3)
        {
            var d0 = Vector512.Load(s); var d1 = Vector512.Load(s + row);
            var d2 = Vector512.Load(s + 2 * row); var d3 = Vector512.Load(s + 3 * row);
            t0 = d0 - d2; t1 = d1 + d2; t2 = d2 - d1; t3 = d1 - d3;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Row4(float* d, long pos, Vector512<float> t0, Vector512<float> t1, Vector512<float> t2, Vector512<float> t3)
        {
            (t0 - t2).Store(d); (t1 + t2).Store(d + pos);
            (t2 - t1).Store(d + 2 * pos); (t1 - t3).Store(d + 3 * pos);
        }

        /// <summary>yl[o, y + a, x + b][lanes of unit u] = (Aᵀ M A)[a, b] for M = mb[·][o][k], u = u0 + k, inside the
        /// image. Channel-major like TransformInput, with the units' tile offsets and edges worked out once.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void TransformOutput(float* mb, int u0, int n, int outCPad, long pos)
        {
            long slice = (long)block * Lane, plane = (long)g.H * g.W * lanes, row = (long)g.W * lanes;
            long* at = stackalloc long[n];                                   // tile top left of unit u0 + k, channel 0
            byte* edge = stackalloc byte[n];                                 // 1: a column to its right, 2: a row below
            for (int k = 0; k < n; k++)
            {
                int lane = TileOrigin(u0 + k, out int y, out int x);
                at[k] = y * row + (long)x * lanes + lane;
                edge[k] = (byte)((x + 1 < g.W ? 1 : 0) | (y + 1 < g.H ? 2 : 0));
            }
            for (int o = 0; o < outC; o++)
                for (int k = 0; k < n; k++)
                {
                    float* mo = mb + o * slice + k * Lane, d = yl + o * plane + at[k];
                    // Aᵀ M: two rows of four
                    var s00 = Vector512.Load(mo) + Vector512.Load(mo + 4 * pos) + Vector512.Load(mo + 8 * pos);
                    var s01 = Vector512.Load(mo + pos) + Vector512.Load(mo + 5 * pos) + Vector512.Load(mo + 9 * pos);
                    var s02 = Vector512.Load(mo + 2 * pos) + Vector512.Load(mo + 6 * pos) + Vector512.Load(mo + 10 * pos);
                    var s03 = Vector512.Load(mo + 3 * pos) + Vector512.Load(mo + 7 * pos) + Vector512.Load(mo + 11 * pos);
                    var s10 = Vector512.Load(mo + 4 * pos) - Vector512.Load(mo + 8 * pos) - Vector512.Load(mo + 12 * pos);
                    var s11 = Vector512.Load(mo + 5 * pos) - Vector512.Load(mo + 9 * pos) - Vector512.Load(mo + 13 * pos);
                    var s12 = Vector512.Load(mo + 6 * pos) - Vector512.Load(mo + 10 * pos) - Vector512.Load(mo + 14 * pos);
                    var s13 = Vector512.Load(mo + 7 * pos) - Vector512.Load(mo + 11 * pos) - Vector512.Load(mo + 15 * pos);
                    bool right = (edge[k] & 1) != 0;
                    (s00 + s01 + s02).Store(d);
                    if (right) (s01 - s02 - s03).Store(d + lanes);
                    if ((edge[k] & 2) != 0)
                    {
                        (s10 + s11 + s12).Store(d + row);
                        if (right) (s11 - s12 - s13).Store(d + row + lanes);
                    }
                }
        }
    }

    /// <summary>m[r·slice + (0, 16, 32)] = Σ_(c &lt; cin) w[c][r] · x[c·slice + (0, 16, 32)] for the 8 outputs r of a
    /// block: one position's product for three units.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Product(float* x, int cin, long slice, float* w, float* m)
    {
        var a00 = Vector512<float>.Zero; var a01 = a00; var a02 = a00; var a10 = a00; var a11 = a00; var a12 = a00;
        var a20 = a00; var a21 = a00; var a22 = a00; var a30 = a00; var a31 = a00; var a32 = a00;
        var a40 = a00; var a41 = a00; var a42 = a00; var a50 = a00; var a51 = a00; var a52 = a00;
        var a60 = a00; var a61 = a00; var a62 = a00; var a70 = a00; var a71 = a00; var a72 = a00;
        for (int c = 0; c < cin; c++, x += slice, w += OutBlock)
        {
            var x0 = Vector512.Load(x);
            var x1 = Vector512.Load(x + Lane);
            var x2 = Vector512.Load(x + 2 * Lane);
            var b = Vector512.Create(w[0]); a00 = Vector512.FusedMultiplyAdd(b, x0, a00); a01 = Vector512.FusedMultiplyAdd(b, x1, a01); a02 = Vector512.FusedMultiplyAdd(b, x2, a02);
            b = Vector512.Create(w[1]); a10 = Vector512.FusedMultiplyAdd(b, x0, a10); a11 = Vector512.FusedMultiplyAdd(b, x1, a11); a12 = Vector512.FusedMultiplyAdd(b, x2, a12);
            b = Vector512.Create(w[2]); a20 = Vector512.FusedMultiplyAdd(b, x0, a20); a21 = Vector512.FusedMultiplyAdd(b, x1, a21); a22 = Vector512.FusedMultiplyAdd(b, x2, a22);
            b = Vector512.Create(w[3]); a30 = Vector512.FusedMultiplyAdd(b, x0, a30); a31 = Vector512.FusedMultiplyAdd(b, x1, a31); a32 = Vector512.FusedMultiplyAdd(b, x2, a32);
            b = Vector512.Create(w[4]); a40 = Vector512.FusedMultiplyAdd(b, x0, a40); a41 = Vector512.FusedMultiplyAdd(b, x1, a41); a42 = Vector512.FusedMultiplyAdd(b, x2, a42);
            b = Vector512.Create(w[5]); a50 = Vector512.FusedMultiplyAdd(b, x0, a50); a51 = Vector512.FusedMultiplyAdd(b, x1, a51); a52 = Vector512.FusedMultiplyAdd(b, x2, a52);
            b = Vector512.Create(w[6]); a60 = Vector512.FusedMultiplyAdd(b, x0, a60); a61 = Vector512.FusedMultiplyAdd(b, x1, a61); a62 = Vector512.FusedMultiplyAdd(b, x2, a62);
            b = Vector512.Create(w[7]); a70 = Vector512.FusedMultiplyAdd(b, x0, a70); a71 = Vector512.FusedMultiplyAdd(b, x1, a71); a72 = Vector512.FusedMultiplyAdd(b, x2, a72);
        }
        a00.Store(m); a01.Store(m + Lane); a02.Store(m + 2 * Lane); m += slice;
        a10.Store(m); a11.Store(m + Lane); a12.Store(m + 2 * Lane); m += slice;
        a20.Store(m); a21.Store(m + Lane); a22.Store(m + 2 * Lane); m += slice;
        a30.Store(m); a31.Store(m + Lane); a32.Store(m + 2 * Lane); m += slice;
        a40.Store(m); a41.Store(m + Lane); a42.Store(m + 2 * Lane); m += slice;
        a50.Store(m); a51.Store(m + Lane); a52.Store(m + 2 * Lane); m += slice;
        a60.Store(m); a61.Store(m + Lane); a62.Store(m + 2 * Lane); m += slice;
        a70.Store(m); a71.Store(m + Lane); a72.Store(m + 2 * Lane);
    }
}

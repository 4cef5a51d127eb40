// Winograd F(2×2, 3×3) forward of 3×3 "same" convolutions on NCHW images with many channels (Stable Diffusion's
// UNet at 320-2560 channels and its VAE decoder at 128-512), through the packed GEMM: the algorithm of
// ConvWinograd.cs (Lavin & Gray 2016; see there for the transforms), laid out for small batches instead of the batch
// in the vector lanes. Per 2×2 output tile and input channel the 4×4 input patch d becomes V = Bᵀ d B; per output and
// input channel the 3×3 kernel g becomes U = G g Gᵀ; then for each of the 16 positions ξ of the 4×4,
// M_ξ (Cout × tiles) = U_ξ (Cout × Cin) · V_ξ (Cin × tiles), one GEMM of the batch of 16; and each tile's outputs are
// Aᵀ M A. 16 multiply-adds per input channel for 4 outputs instead of 36: 2.25 times fewer than the direct kernel,
// which on these shapes already runs at 80-90% of the FMA ceiling.
//
// Tiles are taken a chunk of whole tile rows at a time (ChunkFloats bounds V and M of a chunk, so they stay in the
// last-level cache between the three steps). Transforms are vectorised across the tiles of a tile row: each input row
// is first split into its even and odd columns (zero-padded), so the four columns of every tile's patch are plain
// vector loads. Sums in a fixed order whatever the chunk or thread count; U is made in double and rounded once.
// The result differs from the direct convolution by float rounding only (ConvWinogradNchwTests: within 1e-5 of the
// outputs' scale of a double-precision reference).
using System.Buffers;

namespace DiffuSharp.Kernels;

internal static unsafe class ConvWinogradNchw
{
    const int Positions = 16;

    /// <summary>Tests and benchmarks turn this on (KernelSwitches) to compare with the direct kernel on the same shapes.</summary>
    internal static bool Disabled => KernelSwitches.Current.WinogradNchwDisabled;

    /// <summary>Floats of one chunk's V and M together (16 MB).</summary>
    internal static int ChunkFloats => KernelSwitches.Current.WinogradNchwChunkFloats;

    /// <summary>Where this forward runs: 3×3 stride 1 padding 1, even height and width of at least 16, and at least
    /// MinChannels input and output channels (below that the GEMMs are too thin to beat the direct kernel), with SIMD.</summary>
    public static bool Prefer(in ConvGeometry g, int cout) =>
        !Disabled && g.Kh == 3 && g.Kw == 3 && g.Stride == 1 && g.Pad == 1 && g.H % 2 == 0 && g.W % 2 == 0 && g.W >= 16 && g.H >= 2
        && Math.Min(g.C, cout) >= MinChannels && Vector256.IsHardwareAccelerated;

    internal static int MinChannels => KernelSwitches.Current.WinogradNchwMinChannels;

    /// <summary>Tile rows per chunk: as many whole rows of W/2 tiles as keep 16·(Cin + Cout)·tiles within ChunkFloats,
    /// at least one.</summary>
    internal static int ChunkRows(in ConvGeometry g, int cout, int tileRows)
    {
        long perRow = (long)Positions * (g.C + cout) * (g.W / 2);
        return (int)Math.Clamp(ChunkFloats / perRow, 1, tileRows);
    }

    /// <summary>y (count, cout, H, W) = conv3×3(x, w, padding 1) + bias for x (count, C, H, W), w (cout, C, 3, 3), bias
    /// (cout) or null. With <paramref name="upsampled"/> x is (count, C, H/2, W/2), nearest-upsampled ×2 as its tiles are
    /// read (the upsampled image never made; the same bits). With <paramref name="accumulate"/> y holds a residual and
    /// the convolution is added to it (y + conv: the bits of adding the residual afterwards).</summary>
    public static void Forward(float* x, int count, in ConvGeometry g, float* w, int cout, float* bias, float* y,
        bool upsampled = false, bool accumulate = false) => Forward(x, count, g, w, cout, bias, y, default, upsampled, accumulate);

    /// <summary>As above, the input first mapped by <paramref name="norm"/> (a group norm + SiLU with known statistics)
    /// as its tiles are read: conv3×3(silu(group_norm(x))) without the normalised image, the same bits.</summary>
    public static void Forward(float* x, int count, in ConvGeometry g, float* w, int cout, float* bias, float* y, InputNorm norm,
        bool upsampled = false, bool accumulate = false)
    {
        int cin = g.C, tw = g.W / 2, tileRows = count * (g.H / 2);
        int rows = ChunkRows(g, cout, tileRows), tb = rows * tw;
        float[] uBuf = ArrayPool<float>.Shared.Rent(checked(Positions * cout * cin));
        float[] vBuf = ArrayPool<float>.Shared.Rent(checked(Positions * cin * tb));
        float[] mBuf = ArrayPool<float>.Shared.Rent(checked(Positions * cout * tb));
        try
        {
            fixed (float* u = uBuf, v = vBuf, m = mBuf)
            {
                ParallelFor.Run(cout, new WeightWork(w, cin, cout, u), 8);
                for (int r0 = 0; r0 < tileRows; r0 += rows)
                {
                    int nr = Math.Min(rows, tileRows - r0), n = nr * tw;
                    ParallelFor.Run(nr * cin, new InputWork(x, g, r0, tb, v, upsampled, norm), 4);
                    // M_ξ (cout × n) = U_ξ (cout × cin) · V_ξ (cin × n), row stride tb
                    Gemm.SgemmBatched(Positions, false, false, cout, n, cin, u, cin, (long)cout * cin, v, tb, (long)cin * tb, 0f, m, tb, (long)cout * tb);
                    ParallelFor.Run(nr * cout, new OutputWork(m, g, cout, r0, tb, bias, y, accumulate), 4);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(uBuf);
            ArrayPool<float>.Shared.Return(vBuf);
            ArrayPool<float>.Shared.Return(mBuf);
        }
    }

    /// <summary>A group norm + SiLU applied to the input as it is read: silu((x − μ)·a + b) with, per image b and
    /// channel c, μ = Mean's (hi, lo) pair of group (b, c / (C/Groups)), a = Scale[b·C + c] (rstd·γ) and b = Beta[c]:
    /// the coefficients GroupNormForward uses. default: none.</summary>
    internal readonly struct InputNorm(float* mean, float* scale, float* beta, int groups)
    {
        public readonly float* Mean = mean, Scale = scale, Beta = beta;
        public readonly int Groups = groups;
    }

    /// <summary>U[ξ][o][c] = (G g Gᵀ)[ξ] for g = w[o, c] (3×3), G = (1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1), in double.</summary>
    readonly struct WeightWork(float* w, int cin, int cout, float* u) : IWorkItem
    {
        public void Invoke(int o)
        {
            double* t = stackalloc double[12];
            for (int c = 0; c < cin; c++)
            {
                float* k = w + ((long)o * cin + c) * 9;
                for (int j = 0; j < 3; j++)          // t (4×3) = G·g, column j
                {
                    double g0 = k[j], g1 = k[3 + j], g2 = k[6 + j];
                    t[j] = g0; t[3 + j] = 0.5 * (g0 + g1 + g2); t[6 + j] = 0.5 * (g0 - g1 + g2); t[9 + j] = g2;
                }
                for (int i = 0; i < 4; i++)          // U (4×4) = t·Gᵀ, row i
                {
                    double a = t[3 * i], b = t[3 * i + 1], d = t[3 * i + 2];
                    long at = (long)o * cin + c, stride = (long)cout * cin;
                    u[(4 * i + 0) * stride + at] = (float)a;
                    u[(4 * i + 1) * stride + at] = (float)(0.5 * (a + b + d));
                    u[(4 * i + 2) * stride + at] = (float)(0.5 * (a - b + d));
                    u[(4 * i + 3) * stride + at] = (float)d;
                }
            }
        }
    }

    /// <summary>V[ξ][c][t] for the tiles of one tile row (image, ty) and one input channel c: V = Bᵀ d B per tile,
    /// Bᵀ = (1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1). With upsampled the planes of x are (H/2, W/2): image row yy is
    /// x's row yy/2, image column j its column j/2.</summary>
    readonly struct InputWork(float* x, ConvGeometry g, int r0, int tb, float* v, bool upsampled, InputNorm norm) : IWorkItem
    {
        public void Invoke(int index)
        {
            int cin = g.C, tw = g.W / 2, th = g.H / 2, c = index % cin, row = index / cin;
            int tr = r0 + row, img = tr / th, ty = tr % th;
            // e_i[k] = padded row (2ty − 1 + i) at column 2k, o_i[k] at 2k + 1 (padded column j is image column j − 1)
            int len = tw + 1, ld = (len + 7) / 8 * 8 + 8;
            float* e = stackalloc float[8 * ld];
            new Span<float>(e, 8 * ld).Clear();
            if (upsampled)
            {
                // the upsampled row's column 2k − 1 is source column k − 1, its column 2k source column k
                int sw = g.W / 2;
                float* plane = x + ((long)img * cin + c) * (g.H / 2) * sw;
                for (int i = 0; i < 4; i++)
                {
                    int yy = 2 * ty - 1 + i;
                    if ((uint)yy >= (uint)g.H) continue;
                    float* src = plane + (long)(yy / 2) * sw, ei = e + 2 * i * ld, oi = ei + ld;
                    for (int k = 1; k < len; k++) ei[k] = src[k - 1];
                    for (int k = 0; k < tw; k++) oi[k] = src[k];
                }
            }
            else
            {
                float* plane = x + ((long)img * cin + c) * g.H * g.W;
                for (int i = 0; i < 4; i++)
                {
                    int yy = 2 * ty - 1 + i;
                    if ((uint)yy >= (uint)g.H) continue;
                    float* src = plane + (long)yy * g.W, ei = e + 2 * i * ld, oi = ei + ld;
                    for (int k = 1; k < len; k++) ei[k] = src[2 * k - 1];
                    for (int k = 0; k < tw; k++) oi[k] = src[2 * k];
                }
            }
            if (norm.Scale != null)
            {
                // y = silu((x − μ)·a + b) on the image's values only: the padding stays zero, as it pads the normalised image
                var m = Norm.Centre.Load(norm.Mean + 2 * (img * norm.Groups + c / (cin / norm.Groups)));
                float a = norm.Scale[(long)img * cin + c], b = norm.Beta[c];
                for (int i = 0; i < 4; i++)
                {
                    if ((uint)(2 * ty - 1 + i) >= (uint)g.H) continue;
                    float* ei = e + 2 * i * ld, oi = ei + ld;
                    Norm.AffineRow<SiluActivation>(ei + 1, ei + 1, tw, m, a, b);
                    Norm.AffineRow<SiluActivation>(oi, oi, tw, m, a, b);
                }
            }
            float* dst = v + (long)c * tb + row * tw;
            long ps = (long)cin * tb;                  // V's position stride
            int tx = 0;
            for (; tx + 8 <= tw; tx += 8) Tile8(e, ld, tx, dst + tx, ps);
            for (; tx < tw; tx++) Tile1(e, ld, tx, dst + tx, ps);
        }

        static void Tile8(float* e, int ld, int tx, float* dst, long ps)
        {
            // d[i][j]: row i, column j of the patch: e_i[tx], o_i[tx], e_i[tx + 1], o_i[tx + 1]
            var d00 = Vector256.Load(e + tx); var d01 = Vector256.Load(e + ld + tx); var d02 = Vector256.Load(e + tx + 1); var d03 = Vector256.Load(e + ld + tx + 1);
            float* r1 = e + 2 * ld, r2 = e + 4 * ld, r3 = e + 6 * ld;
            var d10 = Vector256.Load(r1 + tx); var d11 = Vector256.Load(r1 + ld + tx); var d12 = Vector256.Load(r1 + tx + 1); var d13 = Vector256.Load(r1 + ld + tx + 1);
            var d20 = Vector256.Load(r2 + tx); var d21 = Vector256.Load(r2 + ld + tx); var d22 = Vector256.Load(r2 + tx + 1); var d23 = Vector256.Load(r2 + ld + tx + 1);
            var d30 = Vector256.Load(r3 + tx); var d31 = Vector256.Load(r3 + ld + tx); var d32 = Vector256.Load(r3 + tx + 1); var d33 = Vector256.Load(r3 + ld + tx + 1);
            Row(d00 - d20, d01 - d21, d02 - d22, d03 - d23, dst, ps);                  // Bᵀ row 0: d0 − d2
            Row(d10 + d20, d11 + d21, d12 + d22, d13 + d23, dst + 4 * ps, ps);         // row 1: d1 + d2
            Row(d20 - d10, d21 - d11, d22 - d12, d23 - d13, dst + 8 * ps, ps);         // row 2: d2 − d1
            Row(d10 - d30, d11 - d31, d12 - d32, d13 - d33, dst + 12 * ps, ps);        // row 3: d1 − d3
        }

        static void Row(Vector256<float> t0, Vector256<float> t1, Vector256<float> t2, Vector256<float> t3, float* dst, long ps)
        {
            (t0 - t2).Store(dst); (t1 + t2).Store(dst + ps); (t2 - t1).Store(dst + 2 * ps); (t1 - t3).Store(dst + 3 * ps);
        }

        static void Tile1(float* e, int ld, int tx, float* dst, long ps)
        {
            float* d = stackalloc float[16];
            for (int i = 0; i < 4; i++)
            {
                float* ei = e + 2 * i * ld;
                d[4 * i] = ei[tx]; d[4 * i + 1] = ei[ld + tx]; d[4 * i + 2] = ei[tx + 1]; d[4 * i + 3] = ei[ld + tx + 1];
            }
            for (int j = 0; j < 4; j++)
            {
                float t0 = d[j] - d[8 + j], t1 = d[4 + j] + d[8 + j], t2 = d[8 + j] - d[4 + j], t3 = d[4 + j] - d[12 + j];
                d[j] = t0; d[4 + j] = t1; d[8 + j] = t2; d[12 + j] = t3;
            }
            for (int i = 0; i < 4; i++)
            {
                float t0 = d[4 * i], t1 = d[4 * i + 1], t2 = d[4 * i + 2], t3 = d[4 * i + 3];
                float* o = dst + 4 * i * ps;
                o[0] = t0 - t2; o[ps] = t1 + t2; o[2 * ps] = t2 - t1; o[3 * ps] = t1 - t3;
            }
        }
    }

    /// <summary>y's 2×2 outputs of one tile row and one output channel: Aᵀ M A + bias, Aᵀ = (1 1 1 0; 0 1 −1 −1); added to
    /// what y holds with accumulate.</summary>
    readonly struct OutputWork(float* m, ConvGeometry g, int cout, int r0, int tb, float* bias, float* y, bool accumulate) : IWorkItem
    {
        public void Invoke(int index)
        {
            int tw = g.W / 2, th = g.H / 2, o = index % cout, row = index / cout;
            int tr = r0 + row, img = tr / th, ty = tr % th;
            long ps = (long)cout * tb;
            float* src = m + (long)o * tb + row * tw;
            float bv = bias == null ? 0f : bias[o];
            float* y0 = y + (((long)img * cout + o) * g.H + 2 * ty) * g.W, y1 = y0 + g.W;
            float* q = stackalloc float[32];
            int tx = 0;
            var b = Vector256.Create(bv);
            for (; tx + 8 <= tw; tx += 8)
            {
                float* s = src + tx;
                // s_a (rows of Aᵀ M): s0j = m0j + m1j + m2j, s1j = m1j − m2j − m3j
                var m0 = Vector256.Load(s); var m1 = Vector256.Load(s + ps); var m2 = Vector256.Load(s + 2 * ps); var m3 = Vector256.Load(s + 3 * ps);
                var m4 = Vector256.Load(s + 4 * ps); var m5 = Vector256.Load(s + 5 * ps); var m6 = Vector256.Load(s + 6 * ps); var m7 = Vector256.Load(s + 7 * ps);
                var m8 = Vector256.Load(s + 8 * ps); var m9 = Vector256.Load(s + 9 * ps); var m10 = Vector256.Load(s + 10 * ps); var m11 = Vector256.Load(s + 11 * ps);
                var m12 = Vector256.Load(s + 12 * ps); var m13 = Vector256.Load(s + 13 * ps); var m14 = Vector256.Load(s + 14 * ps); var m15 = Vector256.Load(s + 15 * ps);
                var s00 = m0 + m4 + m8; var s01 = m1 + m5 + m9; var s02 = m2 + m6 + m10; var s03 = m3 + m7 + m11;
                var s10 = m4 - m8 - m12; var s11 = m5 - m9 - m13; var s12 = m6 - m10 - m14; var s13 = m7 - m11 - m15;
                (s00 + s01 + s02 + b).Store(q); (s01 - s02 - s03 + b).Store(q + 8);
                (s10 + s11 + s12 + b).Store(q + 16); (s11 - s12 - s13 + b).Store(q + 24);
                if (accumulate)
                    for (int k = 0; k < 8; k++)
                    {
                        int col = 2 * (tx + k);
                        y0[col] += q[k]; y0[col + 1] += q[8 + k]; y1[col] += q[16 + k]; y1[col + 1] += q[24 + k];
                    }
                else
                    for (int k = 0; k < 8; k++)
                    {
                        int col = 2 * (tx + k);
                        y0[col] = q[k]; y0[col + 1] = q[8 + k]; y1[col] = q[16 + k]; y1[col + 1] = q[24 + k];
                    }
            }
            for (; tx < tw; tx++)
            {
                float* s = src + tx;
                float s00 = s[0] + s[4 * ps] + s[8 * ps], s01 = s[ps] + s[5 * ps] + s[9 * ps], s02 = s[2 * ps] + s[6 * ps] + s[10 * ps], s03 = s[3 * ps] + s[7 * ps] + s[11 * ps];
                float s10 = s[4 * ps] - s[8 * ps] - s[12 * ps], s11 = s[5 * ps] - s[9 * ps] - s[13 * ps], s12 = s[6 * ps] - s[10 * ps] - s[14 * ps], s13 = s[7 * ps] - s[11 * ps] - s[15 * ps];
                int col = 2 * tx;
                float a0 = s00 + s01 + s02 + bv, a1 = s01 - s02 - s03 + bv, a2 = s10 + s11 + s12 + bv, a3 = s11 - s12 - s13 + bv;
                if (accumulate) { y0[col] += a0; y0[col + 1] += a1; y1[col] += a2; y1[col + 1] += a3; }
                else { y0[col] = a0; y0[col + 1] = a1; y1[col] = a2; y1[col + 1] = a3; }
            }
        }
    }
}

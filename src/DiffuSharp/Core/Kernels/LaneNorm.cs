// Group norm + SiLU on the lane layout of ConvLanes (image b of a group in vector lane b), for the forward of a
// ResBlock without gradients: its two 3×3 convolutions then run back to back on lane tensors, and the activations
// between them never return to NCHW.
//
// Each map is the per-element arithmetic of Norm.GroupNormForward<SiluActivation>, z = ((x − hi) − lo)·a + β with
// a = rstd·γ and y = silu(z) through the vector SiluOp, with one image per lane instead of one position per lane.
// The coefficients of a lane tensor are a table [channel][hi, lo, a, β][lane]: lanes past the batch get all four
// zero, so a finite input maps to 0 there (what ToLanes leaves in spare lanes).
//
// Statistics on a lane tensor (GroupNormSiluLanes): per lane and group, Σd and Σd² in double in one pass, d = x − K
// shifted by the group's first value K, as Norm.ShiftedMoments does on NCHW rows; only the order of the double sums
// differs, so μ and rstd may differ from Norm's in the last bit of their float forms. Every (lane, group) is summed by one thread in a fixed order: the results do not depend
// on the thread count.
namespace DiffuSharp.Kernels;

internal static unsafe class LaneNorm
{
    const int Hi = 0, Lo = 1, A = 2, Beta = 3, Rows = 4;

    /// <summary>Floats of a coefficient table for C channels of a lane tensor.</summary>
    public static int TableFloats(int channels, int lanes) => channels * Rows * lanes;

    /// <summary>The table of images b0 .. b0 + n − 1 of an NCHW group norm, from its statistics (mean as Centre
    /// (hi, lo) pairs and rstd per (image, group), as Norm.GroupNormStatistics writes them) and γ, β.</summary>
    public static void Table(float* mean, float* rstd, float* gamma, float* beta, int b0, int n, int channels, int groups, int lanes, float* table)
    {
        new Span<float>(table, TableFloats(channels, lanes)).Clear();
        int cg = channels / groups;
        for (int c = 0; c < channels; c++)
        {
            float* t = table + (long)c * Rows * lanes;
            for (int b = 0; b < n; b++)
            {
                int pair = (b0 + b) * groups + c / cg;
                SetLane(t, lanes, b, mean[2 * pair], mean[2 * pair + 1], rstd[pair], gamma[c], beta[c]);
            }
        }
    }

    /// <summary>Lane b of one channel's coefficients: hi, lo, a = rstd·γ (in float, as Norm computes it) and β.</summary>
    static void SetLane(float* t, int lanes, int b, float hi, float lo, float rstd, float gamma, float beta)
    {
        t[Hi * lanes + b] = hi;
        t[Lo * lanes + b] = lo;
        t[A * lanes + b] = rstd * gamma;
        t[Beta * lanes + b] = beta;
    }

    /// <summary>The coefficients hi, lo, a, β of sixteen lanes.</summary>
    public readonly struct Coefficients(Vector512<float> hi, Vector512<float> lo, Vector512<float> a, Vector512<float> beta)
    {
        public readonly Vector512<float> Hi = hi, Lo = lo, A = a, Beta = beta;

        /// <summary>Lanes b .. b + 15 of channel c.</summary>
        public static Coefficients Load(float* table, int lanes, int c, int b)
        {
            float* t = table + (long)c * Rows * lanes + b;
            return new(Vector512.Load(t + LaneNorm.Hi * lanes), Vector512.Load(t + LaneNorm.Lo * lanes),
                Vector512.Load(t + LaneNorm.A * lanes), Vector512.Load(t + LaneNorm.Beta * lanes));
        }

        /// <summary>Lanes b .. b + 7 of channel c, twice over (for two positions of the same eight images).</summary>
        public static Coefficients LoadTwice(float* table, int lanes, int c, int b)
        {
            float* t = table + (long)c * Rows * lanes + b;
            return new(Twice(t + LaneNorm.Hi * lanes), Twice(t + LaneNorm.Lo * lanes), Twice(t + LaneNorm.A * lanes), Twice(t + LaneNorm.Beta * lanes));
            static Vector512<float> Twice(float* p) { var v = Vector256.Load(p); return Vector512.Create(v, v); }
        }
    }

    /// <summary>silu(((v − hi) − lo)·a + β) lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> v, in Coefficients k) =>
        SiluOp.Invoke(Vector512.FusedMultiplyAdd(v - k.Hi - k.Lo, k.A, k.Beta));

    /// <summary>The same for one lane b, through the vector code (the same bits as lane b of the vector form).</summary>
    public static float Apply(float v, float* table, int lanes, int c, int b)
    {
        float* t = table + (long)c * Rows * lanes + b;
        var z = Vector256.FusedMultiplyAdd(Vector256.Create(v) - Vector256.Create(t[Hi * lanes]) - Vector256.Create(t[Lo * lanes]),
            Vector256.Create(t[A * lanes]), Vector256.Create(t[Beta * lanes]));
        return SiluOp.Invoke(z).ToScalar();
    }

    /// <summary>xl = silu(group_norm(h)) with h = (yl + bias[c]) + add[b, c]: yl an unpadded lane tensor (C, H, W,
    /// lanes) of n images (n ≤ lanes), bias the convolution's (may be null), add a per-image addend such as a ResBlock's
    /// embedding ((n, C) rows, may be null); xl a padded lane tensor (C, hp, wp, lanes) with the image at (1, 1), zero
    /// around it and in lanes ≥ n. yl is not changed; its lanes ≥ n must be finite.</summary>
    public static void GroupNormSiluLanes(float* yl, int n, int channels, int h, int w, int lanes, float* bias, float* add,
        float* gamma, float* beta, int groups, float eps, int hp, int wp, float* xl)
    {
        if (lanes % 16 != 0 || n > lanes) throw new ArgumentException($"GroupNormSiluLanes: {n} images in {lanes} lanes (lanes must be a multiple of 16)");
        var work = new LanesWork(yl, n, channels, h, w, lanes, bias, add, gamma, beta, groups, eps, hp, wp, xl);
        ParallelFor.Run(groups, work);
    }

    readonly struct LanesWork(float* yl, int n, int channels, int h, int w, int lanes, float* bias, float* add,
        float* gamma, float* beta, int groups, float eps, int hp, int wp, float* xl) : IWorkItem
    {
        public void Invoke(int g)
        {
            int cg = channels / groups, hw = h * w;
            // per channel of the group and lane: the addend (h = (v + bias) + add is recomputed, never stored)
            float* addLRaw = stackalloc float[cg * lanes + AlignedScratch.Slack], addL = AlignedScratch.Align(addLRaw);
            new Span<float>(addL, cg * lanes).Clear();
            if (add != null)
                for (int k = 0; k < cg; k++)
                    for (int b = 0; b < n; b++) addL[k * lanes + b] = add[(long)b * channels + g * cg + k];
            float* statsRaw = stackalloc float[3 * lanes + AlignedScratch.Slack], stats = AlignedScratch.Align(statsRaw);   // hi, lo, rstd per lane
            new Span<float>(stats, 3 * lanes).Clear();
            int at = 0;
            for (; at + 32 <= lanes && at < n; at += 32) Statistics<TwoVectors>(g, cg, hw, at, addL, stats);
            for (; at < n; at += 16) Statistics<OneVector>(g, cg, hw, at, addL, stats);
            // xl = silu(((h − hi) − lo)·(rstd·γ) + β), image at (1, 1) of each padded plane; coefficients 0 in lanes ≥ n
            float* coeffRaw = stackalloc float[Rows * lanes + AlignedScratch.Slack], coeff = AlignedScratch.Align(coeffRaw);
            for (int k = 0; k < cg; k++)
            {
                int c = g * cg + k;
                new Span<float>(coeff, Rows * lanes).Clear();
                for (int b = 0; b < n; b++) SetLane(coeff, lanes, b, stats[b], stats[lanes + b], stats[2 * lanes + b], gamma[c], beta[c]);
                var bv = Vector512.Create(bias == null ? 0f : bias[c]);
                float* src = yl + (long)c * hw * lanes, dst = xl + (long)c * hp * wp * lanes, ad = addL + k * lanes;
                ClearBorder(dst, h, w, hp, wp, lanes);
                for (int j = 0; j < lanes; j += 16)
                {
                    var kj = Coefficients.Load(coeff, lanes, 0, j);
                    var aj = Vector512.Load(ad + j);
                    for (int y = 0; y < h; y++)
                    {
                        float* s = src + (long)y * w * lanes + j, d = dst + ((long)(y + 1) * wp + 1) * lanes + j;
                        for (int x = 0; x < w; x++)
                            Apply(Vector512.Load(s + (long)x * lanes) + bv + aj, kj).Store(d + (long)x * lanes);
                    }
                }
            }
        }

        /// <summary>μ (as hi + lo) and rstd of lanes j .. j + 16·TSpan.Vectors − 1 over the group's channels and
        /// positions, of h = (v + bias) + add: one pass of Σd and Σd² in double with d = h − K, K the lane's first value
        /// (the shift keeps the variance free of cancellation when |μ| ≫ σ). All the lanes of a pass are read position
        /// after position, so the pass streams through memory.</summary>
        void Statistics<TSpan>(int g, int cg, int hw, int j, float* addL, float* stats) where TSpan : struct, ISpan
        {
            bool two = TSpan.Vectors == 2;
            float* block = yl + (long)g * cg * hw * lanes + j;
            var b0 = Vector512.Create(bias == null ? 0f : bias[g * cg]);
            var first = Vector512.Load(block) + b0 + Vector512.Load(addL + j);
            var firstB = two ? Vector512.Load(block + 16) + b0 + Vector512.Load(addL + j + 16) : default;
            var k0 = Vector512.WidenLower(first); var k1 = Vector512.WidenUpper(first);
            var k2 = Vector512.WidenLower(firstB); var k3 = Vector512.WidenUpper(firstB);
            Vector512<double> s0 = default, s1 = default, s2 = default, s3 = default;
            Vector512<double> q0 = default, q1 = default, q2 = default, q3 = default;
            for (int k = 0; k < cg; k++)
            {
                var bv = Vector512.Create(bias == null ? 0f : bias[g * cg + k]);
                var av = Vector512.Load(addL + k * lanes + j);
                var avB = two ? Vector512.Load(addL + k * lanes + j + 16) : default;
                float* q = block + (long)k * hw * lanes;
                for (int p = 0; p < hw; p++, q += lanes)
                {
                    var v = Vector512.Load(q) + bv + av;                 // (v + bias) + add, as the map below
                    var d0 = Vector512.WidenLower(v) - k0; var d1 = Vector512.WidenUpper(v) - k1;
                    s0 += d0; s1 += d1;
                    q0 = Vector512.FusedMultiplyAdd(d0, d0, q0); q1 = Vector512.FusedMultiplyAdd(d1, d1, q1);
                    if (two)
                    {
                        var u = Vector512.Load(q + 16) + bv + avB;
                        var d2 = Vector512.WidenLower(u) - k2; var d3 = Vector512.WidenUpper(u) - k3;
                        s2 += d2; s3 += d3;
                        q2 = Vector512.FusedMultiplyAdd(d2, d2, q2); q3 = Vector512.FusedMultiplyAdd(d3, d3, q3);
                    }
                }
            }
            double len = (double)cg * hw;
            StoreStatistics(s0, q0, k0, len, j, stats); StoreStatistics(s1, q1, k1, len, j + 8, stats);
            if (two) { StoreStatistics(s2, q2, k2, len, j + 16, stats); StoreStatistics(s3, q3, k3, len, j + 24, stats); }
        }

        /// <summary>hi, lo and rstd of lanes at .. at + 7 (those below n) from their Σd, Σd² and shift.</summary>
        void StoreStatistics(Vector512<double> sum, Vector512<double> sq, Vector512<double> shift, double len, int at, float* stats)
        {
            for (int i = 0; i < 8 && at + i < n; i++)
            {
                double dm = sum.GetElement(i) / len, var = Math.Max(0, sq.GetElement(i) / len - dm * dm), mu = shift.GetElement(i) + dm;
                float hi = (float)mu;
                stats[at + i] = hi;
                stats[lanes + at + i] = (float)(mu - hi);
                stats[2 * lanes + at + i] = (float)(1.0 / Math.Sqrt(var + eps));
            }
        }
    }

    /// <summary>How many Vector512s of lanes one statistics pass takes.</summary>
    interface ISpan { static abstract int Vectors { get; } }
    readonly struct OneVector : ISpan { public static int Vectors => 1; }
    readonly struct TwoVectors : ISpan { public static int Vectors => 2; }

    /// <summary>Zeroes a padded plane (hp × wp × lanes) except the image rows and columns at (1, 1).</summary>
    static void ClearBorder(float* dst, int h, int w, int hp, int wp, int lanes)
    {
        long row = (long)wp * lanes;
        new Span<float>(dst, (int)row).Clear();                                                  // top row
        new Span<float>(dst + (1 + h) * row, (int)((hp - 1 - h) * row)).Clear();                 // bottom rows
        for (int y = 1; y <= h; y++)
        {
            new Span<float>(dst + y * row, lanes).Clear();                                        // left column
            new Span<float>(dst + y * row + (long)(1 + w) * lanes, (wp - 1 - w) * lanes).Clear(); // right columns
        }
    }
}

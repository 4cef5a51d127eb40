// The Canny edge detector (J. Canny, "A Computational Approach to Edge Detection", PAMI 1986): Gaussian blur,
// Sobel gradients, non-maximum suppression along the gradient, double-threshold hysteresis. The conventions are
// scikit-image's `feature.canny` (0.19), so its output is a reference: the blur is a sampled Gaussian truncated at
// 4σ, zero outside the image and renormalised by the blur of an all-ones image (so borders are not darkened); the
// Sobel filters reflect at the border (scipy's half-sample "reflect"); non-maximum suppression compares the
// magnitude with the two neighbours along the gradient, interpolated linearly between the two pixels the gradient
// passes between; the outermost pixel ring is never an edge; hysteresis keeps each 8-connected chain of maxima
// above the low threshold that contains at least one above the high threshold. Thresholds are on the gradient
// magnitude of an image in [0, 1] with the unnormalised Sobel kernels ([1, 2, 1] ⊗ [−1, 0, 1]), so a sharp step
// of height 1 peaks near 4 before the blur and near 1.6 after a σ = 1 blur. Computed in double precision.
namespace DiffuSharp.Imaging;

/// <summary>Canny parameters. Sigma: the Gaussian blur's standard deviation in pixels (0: no blur). Low, High: the
/// hysteresis thresholds on the Sobel gradient magnitude of an image in [0, 1] (a σ = 1 blurred step of height h peaks
/// near 1.6·h).</summary>
public sealed record CannyOptions(double Sigma = 1.0, double Low = 0.2, double High = 0.4)
{
    internal void Validate()
    {
        if (!double.IsFinite(Sigma) || Sigma < 0) throw new ArgumentException($"Canny: sigma must be a finite number ≥ 0, got {Sigma}");
        if (!double.IsFinite(Low) || Low < 0) throw new ArgumentException($"Canny: the low threshold must be a finite number ≥ 0, got {Low}");
        if (!double.IsFinite(High) || High < Low) throw new ArgumentException($"Canny: the high threshold ({High}) must be at least the low one ({Low})");
    }
}

/// <summary>The Canny edge detector with scikit-image's feature.canny conventions (blur, Sobel gradients, non-maximum
/// suppression, hysteresis), in double precision; makes ControlNet edge maps.</summary>
public static class Canny
{
    /// <summary>Edges of a gray image. gray: (height, width) row-major in [0, 1]; returns one bool per pixel, true on an edge.</summary>
    public static bool[] Detect(ReadOnlySpan<float> gray, int width, int height, CannyOptions? options = null)
    {
        var g = new double[gray.Length];
        for (int k = 0; k < g.Length; k++) g[k] = gray[k];
        return Detect(g, width, height, options);
    }

    /// <summary>Edges of a gray image given in double precision. gray: (height, width) row-major in [0, 1].</summary>
    public static bool[] Detect(ReadOnlySpan<double> gray, int width, int height, CannyOptions? options = null)
    {
        options ??= new CannyOptions();
        options.Validate();
        if (width < 1 || height < 1 || (long)width * height != gray.Length)
            throw new ArgumentException($"Canny: a {width}×{height} image needs {(long)width * height} values, got {gray.Length}");
        var smoothed = GaussianBlur(gray, width, height, options.Sigma);
        var (gi, gj) = Sobel(smoothed, width, height);
        var magnitude = new double[gi.Length];
        for (int k = 0; k < magnitude.Length; k++) magnitude[k] = double.Hypot(gi[k], gj[k]);
        var maxima = LocalMaxima(gi, gj, magnitude, width, height);
        return Hysteresis(maxima, magnitude, width, height, options.Low, options.High);
    }

    /// <summary>Edges of an 8-bit image (colour is converted to BT.601 luma): a gray image, 255 on edges and 0 elsewhere.</summary>
    public static Image8 Detect(Image8 image, CannyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        image.Validate("Canny.Detect");
        var gray = ToUnit(image);
        var edges = Detect(gray, image.Width, image.Height, options);
        var px = new byte[edges.Length];
        for (int k = 0; k < px.Length; k++) px[k] = edges[k] ? (byte)255 : (byte)0;
        return new Image8(image.Width, image.Height, 1, px);
    }

    /// <summary>The image as gray values in [0, 1] (colour → BT.601 luma, alpha composited over white).</summary>
    public static float[] ToUnit(Image8 image)
    {
        var g = image.WithChannels(1).Pixels;
        var v = new float[g.Length];
        for (int k = 0; k < v.Length; k++) v[k] = g[k] / 255f;
        return v;
    }

    /// <summary>Separable Gaussian blur, radius ⌊4σ + ½⌋, zero padding, divided by the blur of ones (so the border keeps
    /// its level). σ = 0 returns the image unchanged. Down the rows first, then across, each tap pair summed before
    /// weighting from the outside in (scipy.ndimage's order, so ties in flat or symmetric regions break as there).</summary>
    internal static double[] GaussianBlur(ReadOnlySpan<double> img, int w, int h, double sigma)
    {
        var outp = img.ToArray();
        if (sigma == 0) return outp;
        int radius = (int)(4.0 * sigma + 0.5);
        var kernel = new double[2 * radius + 1];
        double a = -0.5 / (sigma * sigma);
        for (int t = -radius; t <= radius; t++) kernel[t + radius] = Math.Exp(a * (t * t));
        double sum = PairwiseSum(kernel);
        for (int t = 0; t < kernel.Length; t++) kernel[t] /= sum;
        var ones = new double[w * h];
        Array.Fill(ones, 1.0);
        var blurred = Correlate(Correlate(outp, w, h, kernel, alongRows: false), w, h, kernel, alongRows: true);
        var weight = Correlate(Correlate(ones, w, h, kernel, alongRows: false), w, h, kernel, alongRows: true);
        for (int k = 0; k < blurred.Length; k++) blurred[k] /= weight[k] + 2.220446049250313e-16;   // ε as skimage's
        return blurred;
    }

    /// <summary>A symmetric kernel (2r + 1 taps) along the rows of each column (alongRows false: down a column) or along each
    /// row, zero outside: out = in[0]·k[0] + Σ_{j=r..1} (in[−j] + in[+j])·k[j].</summary>
    static double[] Correlate(double[] src, int w, int h, double[] kernel, bool alongRows)
    {
        int r = kernel.Length / 2, n = alongRows ? w : h, lines = alongRows ? h : w;
        int step = alongRows ? 1 : w, lineStep = alongRows ? w : 1;
        var dst = new double[src.Length];
        for (int line = 0; line < lines; line++)
        {
            int b = line * lineStep;
            for (int i = 0; i < n; i++)
            {
                double acc = src[b + i * step] * kernel[r];
                for (int j = r; j >= 1; j--)
                {
                    double lo = i - j >= 0 ? src[b + (i - j) * step] : 0, hi = i + j < n ? src[b + (i + j) * step] : 0;
                    acc += (lo + hi) * kernel[r - j];
                }
                dst[b + i * step] = acc;
            }
        }
        return dst;
    }

    /// <summary>NumPy's pairwise float64 sum for up to 128 values: eight running sums, combined as a tree, then the tail.</summary>
    static double PairwiseSum(double[] v)
    {
        if (v.Length < 8)
        {
            double s = 0;
            foreach (double x in v) s += x;
            return s;
        }
        var r = new double[8];
        Array.Copy(v, r, 8);
        int i = 8;
        for (; i + 8 <= v.Length; i += 8)
            for (int j = 0; j < 8; j++) r[j] += v[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < v.Length; i++) res += v[i];
        return res;
    }

    /// <summary>Sobel gradients: gi = d/d(row) ([−1, 0, 1] down the rows, then [1, 2, 1] across), gj = d/d(column)
    /// (across, then down); half-sample reflection at the border (index −1 reads 0, index n reads n − 1).</summary>
    internal static (double[] Gi, double[] Gj) Sobel(double[] s, int w, int h)
    {
        var di = new double[w * h];                  // s[y + 1] − s[y − 1]
        var dj = new double[w * h];                  // s[x + 1] − s[x − 1]
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                di[y * w + x] = s[Reflect(y + 1, h) * w + x] - s[Reflect(y - 1, h) * w + x];
                dj[y * w + x] = s[y * w + Reflect(x + 1, w)] - s[y * w + Reflect(x - 1, w)];
            }
        var gi = new double[w * h];
        var gj = new double[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                gi[y * w + x] = di[y * w + x] * 2 + (di[y * w + Reflect(x - 1, w)] + di[y * w + Reflect(x + 1, w)]);
                gj[y * w + x] = dj[y * w + x] * 2 + (dj[Reflect(y - 1, h) * w + x] + dj[Reflect(y + 1, h) * w + x]);
            }
        return (gi, gj);
    }

    static int Reflect(int i, int n) => i < 0 ? Math.Min(-i - 1, n - 1) : i >= n ? Math.Max(2 * n - i - 1, 0) : i;

    /// <summary>Non-maximum suppression: a pixel (not on the outer ring, magnitude > 0) is a maximum when its magnitude is
    /// at least the magnitude interpolated at both neighbours along its gradient.</summary>
    internal static bool[] LocalMaxima(double[] gi, double[] gj, double[] m, int w, int h)
    {
        var maxima = new bool[w * h];
        for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++)
            {
                int k = y * w + x;
                double mk = m[k];
                if (!(mk > 0)) continue;
                double ai = Math.Abs(gi[k]), aj = Math.Abs(gj[k]);
                double M(int dy, int dx) => m[k + dy * w + dx];
                // The gradient (gi, gj) points down-right or up-left (same signs) or down-left / up-right (opposite).
                // It leaves the pixel through a side (row or column step) and the corner beside it; w is how far
                // toward the corner, |minor| / |major|. Compare both ways along the gradient.
                bool same = gi[k] * gj[k] >= 0;
                double wt, plus, minus;
                if (same && ai >= aj)       // mostly down: side (1, 0), corner (1, 1)
                {
                    wt = aj / ai;
                    plus = M(1, 1) * wt + M(1, 0) * (1 - wt);
                    minus = M(-1, -1) * wt + M(-1, 0) * (1 - wt);
                }
                else if (same)              // mostly right: side (0, 1), corner (1, 1)
                {
                    wt = ai / aj;
                    plus = M(1, 1) * wt + M(0, 1) * (1 - wt);
                    minus = M(-1, -1) * wt + M(0, -1) * (1 - wt);
                }
                else if (ai <= aj)          // mostly right, going up: side (0, 1), corner (−1, 1)
                {
                    wt = ai / aj;
                    plus = M(-1, 1) * wt + M(0, 1) * (1 - wt);
                    minus = M(1, -1) * wt + M(0, -1) * (1 - wt);
                }
                else                        // mostly up, going right: side (−1, 0), corner (−1, 1)
                {
                    wt = aj / ai;
                    plus = M(-1, 1) * wt + M(-1, 0) * (1 - wt);
                    minus = M(1, -1) * wt + M(1, 0) * (1 - wt);
                }
                maxima[k] = plus <= mk && minus <= mk;
            }
        return maxima;
    }

    /// <summary>Keeps the 8-connected chains of maxima with magnitude ≥ low that hold at least one pixel ≥ high.</summary>
    internal static bool[] Hysteresis(bool[] maxima, double[] m, int w, int h, double low, double high)
    {
        var edges = new bool[w * h];
        var stack = new Stack<int>();
        for (int k = 0; k < edges.Length; k++)
        {
            if (!maxima[k] || m[k] < high || edges[k]) continue;
            edges[k] = true;
            stack.Push(k);
            while (stack.Count > 0)                       // flood the chain through weak maxima
            {
                int p = stack.Pop(), py = p / w, px = p % w;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int yy = py + dy, xx = px + dx;
                        if ((uint)yy >= (uint)h || (uint)xx >= (uint)w) continue;
                        int q = yy * w + xx;
                        if (edges[q] || !maxima[q] || m[q] < low) continue;
                        edges[q] = true;
                        stack.Push(q);
                    }
            }
        }
        return edges;
    }
}

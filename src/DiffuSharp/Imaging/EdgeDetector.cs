// Canny's edge detector (Canny 1986, "A Computational Approach to Edge Detection"), the preprocessing that turns a
// picture into a ControlNet control image ("canny" ControlNets): BT.601 luma → 5×5 Gaussian blur (σ ≈ 1.4) → Sobel
// gradients → non-maximum suppression along the gradient direction → double threshold with hysteresis. Thresholds
// are fractions of the strongest gradient (OpenCV's cv2.Canny takes absolute ones). Output: white edges on black, RGB.
namespace DiffuSharp.Imaging;

public static class EdgeDetector
{
    static readonly float[] Gauss5 = [2, 4, 5, 4, 2, 4, 9, 12, 9, 4, 5, 12, 15, 12, 5, 4, 9, 12, 9, 4, 2, 4, 5, 4, 2];   // / 159

    /// <summary>Edges of <paramref name="image"/>: pixels whose suppressed gradient is ≥ high·max, and those ≥ low·max
    /// connected to them (8-neighbourhood).</summary>
    public static Image8 Detect(Image8 image, double low = 0.1, double high = 0.2)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!(low >= 0 && low <= high && high <= 1)) throw new ArgumentException($"edge thresholds need 0 ≤ low ≤ high ≤ 1, got low {low}, high {high}");
        int w = image.Width, h = image.Height;
        var gray = image.WithChannels(1).Pixels;
        var blur = new float[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float s = 0;
                for (int dy = -2; dy <= 2; dy++)
                    for (int dx = -2; dx <= 2; dx++)
                        s += Gauss5[(dy + 2) * 5 + dx + 2] * gray[Clamp(y + dy, h) * w + Clamp(x + dx, w)];
                blur[y * w + x] = s / 159f;
            }
        var mag = new float[w * h];
        var dir = new byte[w * h];                       // 0: horizontal gradient, 1: 45°, 2: vertical, 3: 135°
        float max = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float P(int dx, int dy) => blur[Clamp(y + dy, h) * w + Clamp(x + dx, w)];
                float gx = P(1, -1) + 2 * P(1, 0) + P(1, 1) - P(-1, -1) - 2 * P(-1, 0) - P(-1, 1);
                float gy = P(-1, 1) + 2 * P(0, 1) + P(1, 1) - P(-1, -1) - 2 * P(0, -1) - P(1, -1);
                float m = MathF.Sqrt(gx * gx + gy * gy);
                mag[y * w + x] = m;
                max = MathF.Max(max, m);
                double angle = Math.Atan2(gy, gx) * 180 / Math.PI;
                if (angle < 0) angle += 180;
                dir[y * w + x] = (byte)(angle < 22.5 || angle >= 157.5 ? 0 : angle < 67.5 ? 1 : angle < 112.5 ? 2 : 3);
            }
        // non-maximum suppression: keep a pixel only where it beats both neighbours across the edge
        var thin = new float[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var (dx, dy) = dir[y * w + x] switch { 0 => (1, 0), 1 => (1, 1), 2 => (0, 1), _ => (-1, 1) };
                float m = mag[y * w + x];
                float a = Inside(x + dx, y + dy, w, h) ? mag[(y + dy) * w + x + dx] : 0;
                float b = Inside(x - dx, y - dy, w, h) ? mag[(y - dy) * w + x - dx] : 0;
                thin[y * w + x] = m >= a && m >= b ? m : 0;
            }
        // hysteresis: flood from strong pixels through weak ones
        var edge = new bool[w * h];
        float hi = (float)(high * max), lo = (float)(low * max);
        var stack = new Stack<int>();
        for (int i = 0; i < thin.Length; i++)
            if (max > 0 && thin[i] >= hi && thin[i] > 0 && !edge[i]) { edge[i] = true; stack.Push(i); }
        while (stack.Count > 0)
        {
            int i = stack.Pop(), cx = i % w, cy = i / w;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                {
                    int nx = cx + dx, ny = cy + dy;
                    if (!Inside(nx, ny, w, h)) continue;
                    int j = ny * w + nx;
                    if (!edge[j] && thin[j] >= lo && thin[j] > 0) { edge[j] = true; stack.Push(j); }
                }
        }
        var px = new byte[w * h * 3];
        for (int i = 0; i < edge.Length; i++)
            if (edge[i]) px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = 255;
        return new Image8(w, h, 3, px);
    }

    /// <summary>The image scaled (bilinear) to cover <paramref name="width"/>×<paramref name="height"/> and centre-cropped.</summary>
    public static Image8 Cover(Image8 image, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (width < 1 || height < 1) throw new ArgumentException($"Cover: size must be positive, got {width}x{height}");
        int c = image.Channels, sw = image.Width, sh = image.Height;
        double scale = Math.Max(width / (double)sw, height / (double)sh);
        double ox = (sw * scale - width) / 2, oy = (sh * scale - height) / 2;
        var dst = new byte[width * height * c];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                double sx = Math.Clamp((x + 0.5 + ox) / scale - 0.5, 0, sw - 1), sy = Math.Clamp((y + 0.5 + oy) / scale - 0.5, 0, sh - 1);
                int x0 = (int)sx, y0 = (int)sy, x1 = Math.Min(x0 + 1, sw - 1), y1 = Math.Min(y0 + 1, sh - 1);
                double fx = sx - x0, fy = sy - y0;
                for (int k = 0; k < c; k++)
                {
                    double v = (1 - fy) * ((1 - fx) * image.Pixels[(y0 * sw + x0) * c + k] + fx * image.Pixels[(y0 * sw + x1) * c + k])
                             + fy * ((1 - fx) * image.Pixels[(y1 * sw + x0) * c + k] + fx * image.Pixels[(y1 * sw + x1) * c + k]);
                    dst[(y * width + x) * c + k] = (byte)Math.Clamp(Math.Round(v), 0, 255);
                }
            }
        return new Image8(width, height, c, dst);
    }

    static int Clamp(int i, int n) => i < 0 ? 0 : i >= n ? n - 1 : i;
    static bool Inside(int x, int y, int w, int h) => x >= 0 && y >= 0 && x < w && y < h;
}

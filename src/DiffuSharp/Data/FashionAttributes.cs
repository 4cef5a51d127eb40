// What a caption can say about a garment, measured on the image itself (gray, garment light on black, as in
// Fashion-MNIST):
//   brightness: the mean gray level inside the silhouette (0 black .. 1 white);
//   size:       the silhouette's share of the image (Silhouette.Mask at gray > 0.05, holes filled);
//   texture:    the mean absolute difference between each pixel and the mean of its 3×3 neighbourhood, over the
//               silhouette shrunk by two pixels (so the outline itself does not count): near 0 on plain cloth,
//               large on stripes, checks and prints.
// All three are in gray units of [0, 1] and computed in double precision, so they are the same on every machine.
using DiffuSharp.Imaging;

namespace DiffuSharp.Data;

/// <summary>The measured attributes of one garment image. Brightness and Texture are gray levels in [0, 1]; Size is the
/// fraction of the image inside the silhouette.</summary>
public readonly record struct FashionAttributes(double Brightness, double Size, double Texture)
{
    /// <summary>Object pixels are brighter than this gray level (the dataset's background is 0; its JPEG-like halo stays below).</summary>
    public const double SilhouetteThreshold = 0.05;

    /// <summary>Measures an image given as values in [-1, 1] (the dataset's convention). image: (height, width) row-major.</summary>
    public static FashionAttributes Measure(ReadOnlySpan<float> image, int width, int height)
    {
        if (width < 5 || height < 5 || (long)width * height != image.Length)
            throw new ArgumentException($"FashionAttributes: a {width}×{height} image (at least 5×5) needs {(long)width * height} values, got {image.Length}");
        int n = width * height;
        var gray = new float[n];
        for (int k = 0; k < n; k++) gray[k] = Math.Clamp((image[k] + 1f) * 0.5f, 0f, 1f);
        var mask = Silhouette.Mask(gray, width, height, SilhouetteThreshold);

        double sum = 0;
        int count = 0;
        for (int k = 0; k < n; k++)
            if (mask[k]) { sum += gray[k]; count++; }
        double brightness = count == 0 ? 0 : sum / count;
        double size = (double)count / n;

        var inner = Erode(Erode(mask, width, height), width, height);
        double dev = 0;
        int innerCount = 0;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                if (!inner[y * width + x]) continue;
                double box = 0;                           // 3×3 mean, the border clamped (inner pixels are never on it)
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                        box += gray[Math.Clamp(y + dy, 0, height - 1) * width + Math.Clamp(x + dx, 0, width - 1)];
                dev += Math.Abs(gray[y * width + x] - box / 9);
                innerCount++;
            }
        double texture = innerCount == 0 ? 0 : dev / innerCount;
        return new FashionAttributes(brightness, size, texture);
    }

    /// <summary>Binary erosion with the 4-neighbour cross; outside the image counts as background.</summary>
    static bool[] Erode(bool[] m, int w, int h)
    {
        var o = new bool[m.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int k = y * w + x;
                o[k] = m[k] && x > 0 && m[k - 1] && x < w - 1 && m[k + 1] && y > 0 && m[k - w] && y < h - 1 && m[k + w];
            }
        return o;
    }
}

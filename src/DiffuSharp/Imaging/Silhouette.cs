// A garment's silhouette: the filled mask of the object on a plain background. Pixels brighter than a threshold
// are the object (Fashion-MNIST: light garments on black; `invert` for dark objects on a light background); then
// the holes are filled as scipy's binary_fill_holes does: background reachable from the image border through
// 4-connected background pixels stays background, every other pixel (the object and any enclosed gap: a bag's
// handle loop, the dark space between a sandal's straps) is the silhouette.
namespace DiffuSharp.Imaging;

/// <summary>A garment's filled silhouette: pixels brighter (or, inverted, darker) than a threshold, plus every gap they
/// enclose (scipy's binary_fill_holes with 4-connected background).</summary>
public static class Silhouette
{
    /// <summary>The filled object mask. gray: (height, width) row-major in [0, 1]; object pixels are brighter than
    /// <paramref name="threshold"/> (darker, when <paramref name="invert"/>), plus every gap they enclose.</summary>
    public static bool[] Mask(ReadOnlySpan<float> gray, int width, int height, double threshold = 0.05, bool invert = false)
    {
        if (width < 1 || height < 1 || (long)width * height != gray.Length)
            throw new ArgumentException($"Silhouette: a {width}×{height} image needs {(long)width * height} values, got {gray.Length}");
        if (!double.IsFinite(threshold) || threshold < 0 || threshold > 1)
            throw new ArgumentException($"Silhouette: the threshold must be in [0, 1], got {threshold}");
        int n = width * height;
        var background = new bool[n];
        for (int k = 0; k < n; k++) background[k] = invert ? gray[k] >= threshold : gray[k] <= threshold;
        var outside = new bool[n];                 // background connected to the border
        var stack = new Stack<int>();
        void Seed(int k)
        {
            if (!outside[k] && background[k]) { outside[k] = true; stack.Push(k); }
        }
        for (int x = 0; x < width; x++) { Seed(x); Seed((height - 1) * width + x); }
        for (int y = 0; y < height; y++) { Seed(y * width); Seed(y * width + width - 1); }
        while (stack.Count > 0)
        {
            int p = stack.Pop(), py = p / width, px = p % width;
            if (px > 0) Seed(p - 1);
            if (px < width - 1) Seed(p + 1);
            if (py > 0) Seed(p - width);
            if (py < height - 1) Seed(p + width);
        }
        var mask = new bool[n];
        for (int k = 0; k < n; k++) mask[k] = !outside[k];
        return mask;
    }

    /// <summary>The fraction of pixels inside the mask.</summary>
    public static double Area(ReadOnlySpan<bool> mask)
    {
        int c = 0;
        foreach (bool b in mask) if (b) c++;
        return mask.Length == 0 ? 0 : (double)c / mask.Length;
    }
}

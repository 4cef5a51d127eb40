// Sample grids and the float ↔ byte mapping between model space [-1, 1] and 8-bit pixels.
// Bytes from floats: ((x + 1) · 127.5) rounded half-to-even, clamped to 0..255 (NaN → 0 in ToByte; Make refuses
// NaN and ±∞ naming the sample, so a diverged model never becomes a silently black image). Deliberate deviation:
// improved-diffusion's image_sample.py truncates (`.clamp(0, 255).to(th.uint8)`); rounding is unbiased and is what
// torchvision's save_image does, at most one level apart. Floats from bytes: x / 127.5 − 1, as improved-diffusion's
// image_datasets.py. The grid layout follows torchvision's make_grid: padding around and between tiles.
namespace DiffuSharp.Imaging;

/// <summary>Samples in [-1, 1] (N, C, H, W) to one tiled 8-bit image (<see cref="Make"/>), and back.</summary>
public static class ImageGrid
{
    /// <summary>
    /// Tiles samples into one image: <paramref name="columns"/> per row (0: ⌈√N⌉), <paramref name="padding"/> pixels
    /// of <paramref name="padValue"/> around and between tiles. Returns gray for C = 1, RGB for C = 3.
    /// </summary>
    /// <param name="samples">(N, C, H, W) in [-1, 1], values outside are clamped; NaN or ±∞ is an ArgumentException naming the sample.</param>
    public static Image8 Make(ReadOnlySpan<float> samples, int count, int channels, int height, int width,
                              int columns = 0, int padding = 2, byte padValue = 0)
    {
        if (count < 1 || height < 1 || width < 1 || channels is not (1 or 3))
            throw new ArgumentException($"ImageGrid expects (N ≥ 1, C = 1 or 3, H ≥ 1, W ≥ 1), got ({count}, {channels}, {height}, {width})");
        long expected = (long)count * channels * height * width;
        if (samples.Length != expected)
            throw new ArgumentException($"ImageGrid: ({count}, {channels}, {height}, {width}) needs {expected} floats, got {samples.Length}");
        if (columns < 0 || padding < 0)
            throw new ArgumentException($"ImageGrid: columns ({columns}) and padding ({padding}) must not be negative");

        for (int i = 0; i < samples.Length; i++)
            if (!float.IsFinite(samples[i]))
            {
                int per = channels * height * width, n = i / per, r = i % per;
                throw new ArgumentException($"sample {n} holds {(float.IsNaN(samples[i]) ? "NaN" : samples[i] > 0 ? "+inf" : "-inf")} at (c {r / (height * width)}, y {r / width % height}, x {r % width}); the model's output is not finite, no image written");
            }

        int cols = columns == 0 ? (int)Math.Ceiling(Math.Sqrt(count)) : Math.Min(columns, count);
        int rows = (count + cols - 1) / cols;
        long gw = (long)cols * (width + padding) + padding, gh = (long)rows * (height + padding) + padding;
        if (gw > Png.MaxDimension || gh > Png.MaxDimension)
            throw new ArgumentException($"ImageGrid: a {cols}×{rows} grid of {width}×{height} tiles is {gw}×{gh} pixels, over the {Png.MaxDimension} limit");

        var grid = new byte[gw * gh * channels];
        grid.AsSpan().Fill(padValue);
        int plane = height * width;
        for (int n = 0; n < count; n++)
        {
            var img = samples.Slice(n * channels * plane, channels * plane);   // (C, H, W)
            long x0 = padding + (long)(n % cols) * (width + padding);
            long y0 = padding + (long)(n / cols) * (height + padding);
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < height; y++)
                {
                    var src = img.Slice(c * plane + y * width, width);
                    long o = ((y0 + y) * gw + x0) * channels + c;
                    for (int x = 0; x < width; x++, o += channels)
                        grid[o] = ToByte(src[x]);
                }
        }
        return new Image8((int)gw, (int)gh, channels, grid);
    }

    /// <summary>((x + 1) · 127.5) rounded half-to-even and clamped to 0..255; NaN maps to 0.</summary>
    public static byte ToByte(float x)
    {
        float v = MathF.Round((x + 1f) * 127.5f);
        return v >= 255f ? (byte)255 : v > 0f ? (byte)v : (byte)0;    // NaN fails both tests → 0
    }

    /// <summary>Model space from a pixel value v ∈ [0, 255]: v / 127.5 − 1.</summary>
    public static float FromByte(float v) => v / 127.5f - 1f;

    /// <summary>
    /// The image as (C, H, W) floats x / 127.5 − 1 in [-1, 1], converted to <paramref name="channels"/> first
    /// (see <see cref="Image8.WithChannels"/>; alpha is composited over white for C = 1 or 3).
    /// </summary>
    public static float[] ToFloat(Image8 image, int channels)
    {
        ArgumentNullException.ThrowIfNull(image);
        var img = image.WithChannels(channels);
        int plane = img.Width * img.Height;
        var dst = new float[channels * plane];
        var px = img.Pixels;
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < plane; i++)
                dst[c * plane + i] = FromByte(px[i * channels + c]);
        return dst;
    }
}

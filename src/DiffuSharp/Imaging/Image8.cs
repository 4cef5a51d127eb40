// The 8-bit interleaved image that the PNG codec, the image grid and the folder loader exchange, and its
// channel conversions. Gray from RGB uses ITU-R BT.601 luma (as Pillow's "L" conversion does); dropping alpha
// composites over white, so transparent pixels become white rather than whatever colour they happened to hold.
namespace DiffuSharp.Imaging;

/// <summary>
/// An 8-bit image with interleaved samples: row-major, <see cref="Channels"/> bytes per pixel.
/// Channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
/// </summary>
public sealed record Image8(int Width, int Height, int Channels, byte[] Pixels)
{
    /// <summary>An all-zero image.</summary>
    public static Image8 Blank(int width, int height, int channels)
    {
        ValidateSize(width, height, channels, "Image8.Blank");
        return new Image8(width, height, channels, new byte[width * height * channels]);
    }

    /// <summary>
    /// This image with <paramref name="channels"/> channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA):
    /// gray→RGB replicates, RGB→gray takes BT.601 luma, removing alpha composites over white, adding alpha makes it opaque.
    /// </summary>
    public Image8 WithChannels(int channels)
    {
        Validate($"Image8.WithChannels({channels})");
        if (channels is < 1 or > 4)
            throw new ArgumentOutOfRangeException(nameof(channels), $"channels must be 1..4, got {channels}");
        if (channels == Channels) return this;
        int n = Width * Height, sc = Channels;
        bool srcColor = sc >= 3, srcAlpha = sc is 2 or 4;
        var dst = new byte[n * channels];
        var src = Pixels;
        for (int i = 0, s = 0, d = 0; i < n; i++, s += sc, d += channels)
        {
            int r = src[s], g = srcColor ? src[s + 1] : r, b = srcColor ? src[s + 2] : r;
            int a = srcAlpha ? src[s + sc - 1] : 255;
            if (channels is 1 or 3 && a != 255)
            {
                r = OverWhite(r, a); g = OverWhite(g, a); b = OverWhite(b, a);
            }
            if (channels <= 2)
                dst[d] = srcColor ? (byte)((299 * r + 587 * g + 114 * b + 500) / 1000) : (byte)r;
            else
            {
                dst[d] = (byte)r; dst[d + 1] = (byte)g; dst[d + 2] = (byte)b;
            }
            if (channels is 2 or 4) dst[d + channels - 1] = (byte)a;
        }
        return new Image8(Width, Height, channels, dst);
    }

    // c·α + 255·(1 − α), α = a/255, rounded to nearest.
    static int OverWhite(int c, int a) => (c * a + 255 * (255 - a) + 127) / 255;

    /// <summary>Throws ArgumentException naming <paramref name="context"/> unless the sizes and buffer agree.</summary>
    internal void Validate(string context)
    {
        ValidateSize(Width, Height, Channels, context);
        long expected = (long)Width * Height * Channels;
        if (Pixels is null || Pixels.Length != expected)
            throw new ArgumentException($"{context}: a {Width}×{Height}×{Channels} image needs {expected} bytes, got {Pixels?.Length.ToString() ?? "null"}.");
    }

    static void ValidateSize(int width, int height, int channels, string context)
    {
        if (width < 1 || height < 1 || width > Png.MaxDimension || height > Png.MaxDimension)
            throw new ArgumentException($"{context}: image size {width}×{height} is outside 1..{Png.MaxDimension}.");
        if (channels is < 1 or > 4)
            throw new ArgumentException($"{context}: channels must be 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA), got {channels}.");
    }
}

// Resizing an 8-bit image to a given width and height for a picture that must fill them (a control image from an
// uploaded photo): scaled bilinearly (half-pixel centres, clamped edges) until it covers the target, then
// centre-cropped, as sd-webui's "Crop and Resize".
namespace DiffuSharp.Imaging;

/// <summary>Resizing 8-bit images to fill a target size: bilinear scaling until the image covers it, then a centre crop
/// (sd-webui's "Crop and Resize").</summary>
public static class ImageResize
{
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
}

// Pads every image of a dataset with a constant border, e.g. Fashion-MNIST's 28×28 to 32×32 with −1 (its black
// background), so that a ×4 autoencoder gives 8×8 latents a UNet can halve twice.
namespace DiffuSharp.Data;

/// <summary>Constant-border padding of whole datasets (e.g. Fashion-MNIST's 28×28 to 32×32 with −1, its black
/// background) and the matching crop.</summary>
public static class ImagePadding
{
    /// <summary>The dataset with <paramref name="pad"/> pixels of <paramref name="value"/> on every side; labels kept.</summary>
    public static ImageDataset Pad(ImageDataset data, int pad, float value = -1f)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (pad < 0) throw new ArgumentOutOfRangeException(nameof(pad), $"padding must be ≥ 0, got {pad}");
        if (pad == 0) return data;
        int C = data.Channels, H = data.Height, W = data.Width, H2 = H + 2 * pad, W2 = W + 2 * pad;
        var dst = new float[(long)data.Count * C * H2 * W2];
        Array.Fill(dst, value);
        for (int i = 0; i < data.Count; i++)
        {
            var src = data.Image(i);
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++)
                    src.Slice((c * H + y) * W, W).CopyTo(dst.AsSpan(((i * C + c) * H2 + y + pad) * W2 + pad, W));
        }
        return new ImageDataset(dst, data.Count, C, H2, W2, data.Labels, data.NumClasses);
    }

    /// <summary>Removes <paramref name="pad"/> pixels from every side of (N, C, H, W) images.</summary>
    public static float[] Crop(ReadOnlySpan<float> images, int count, int channels, int height, int width, int pad)
    {
        int H2 = height - 2 * pad, W2 = width - 2 * pad;
        if (H2 < 1 || W2 < 1) throw new ArgumentException($"cannot crop {pad} pixels from {height}×{width} images");
        var dst = new float[count * channels * H2 * W2];
        for (int i = 0; i < count * channels; i++)
            for (int y = 0; y < H2; y++)
                images.Slice((i * height + y + pad) * width + pad, W2).CopyTo(dst.AsSpan((i * H2 + y) * W2, W2));
        return dst;
    }
}

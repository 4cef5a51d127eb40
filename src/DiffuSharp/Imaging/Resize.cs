// Separable resampling of an 8-bit image to float planes, fused with a centre crop: only the output pixels inside
// the crop are computed. Downscaling averages over each output pixel's footprint (exact area coverage, so a 2×
// reduction is the mean of 2×2 blocks); upscaling is bilinear with half-pixel centres and clamped edges.
// improved-diffusion instead halves with a box filter, then finishes with bicubic; area averaging is simpler,
// deterministic and alias-free for the reductions a dataset needs.
namespace DiffuSharp.Imaging;

internal static class Resize
{
    /// <summary>One axis: for output j, taps Index[j·Taps + k] with Weight[j·Taps + k] (unused taps have weight 0).</summary>
    readonly record struct AxisWeights(int Taps, int[] Index, float[] Weight);

    /// <summary>
    /// Scales so the short side is <paramref name="size"/>, centre-crops to size×size, and writes (C, size, size)
    /// values v / 127.5 − 1 into <paramref name="dst"/>. The image must already have C channels.
    /// </summary>
    public static void ShortSideCenterCrop(Image8 img, int size, Span<float> dst)
    {
        int w = img.Width, h = img.Height, c = img.Channels;
        // Resized size: the short side becomes `size`, the long side keeps the aspect ratio (rounded).
        int rw = w <= h ? size : (int)Math.Max(size, Math.Round((double)w * size / h));
        int rh = w <= h ? (int)Math.Max(size, Math.Round((double)h * size / w)) : size;
        var ax = Axis(w, rw, (rw - size) / 2, size);
        var ay = Axis(h, rh, (rh - size) / 2, size);

        var tmp = new float[c * h * size];                          // (C, H, size): rows resampled horizontally
        var px = img.Pixels;
        for (int y = 0; y < h; y++)
            for (int j = 0; j < size; j++)
                for (int ch = 0; ch < c; ch++)
                {
                    float acc = 0;
                    for (int k = 0; k < ax.Taps; k++)
                        acc += ax.Weight[j * ax.Taps + k] * px[(y * w + ax.Index[j * ax.Taps + k]) * c + ch];
                    tmp[(ch * h + y) * size + j] = acc;
                }
        for (int ch = 0; ch < c; ch++)                              // (C, size, size): then vertically
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++)
                {
                    float acc = 0;
                    for (int k = 0; k < ay.Taps; k++)
                        acc += ay.Weight[i * ay.Taps + k] * tmp[(ch * h + ay.Index[i * ay.Taps + k]) * size + j];
                    dst[(ch * size + i) * size + j] = ImageGrid.FromByte(acc);
                }
    }

    /// <summary>Weights mapping <paramref name="inSize"/> source pixels to outputs [offset, offset + count) of an <paramref name="outSize"/> resize.</summary>
    static AxisWeights Axis(int inSize, int outSize, int offset, int count)
    {
        double scale = (double)inSize / outSize;                    // source pixels per output pixel
        int taps = scale > 1 ? (int)Math.Ceiling(scale) + 1 : 2;
        var index = new int[count * taps];
        var weight = new float[count * taps];
        for (int j = 0; j < count; j++)
        {
            int t = j + offset, o = j * taps;
            if (scale > 1)
            {
                // Area: output t covers source [t·scale, (t+1)·scale); each source pixel weighs its overlap / scale.
                double lo = t * scale, hi = Math.Min(inSize, (t + 1) * scale);
                int first = (int)Math.Floor(lo);
                for (int k = 0; k < taps; k++)
                {
                    int i = Math.Min(first + k, inSize - 1);
                    double overlap = Math.Min(hi, first + k + 1) - Math.Max(lo, first + k);
                    index[o + k] = i;
                    weight[o + k] = overlap > 0 ? (float)(overlap / scale) : 0f;
                }
            }
            else
            {
                // Bilinear: output centre t + ½ sits at source coordinate (t + ½)·scale − ½, clamped to the edge pixels.
                double x = Math.Clamp((t + 0.5) * scale - 0.5, 0, inSize - 1);
                int i0 = (int)Math.Floor(x);
                double f = x - i0;
                index[o] = i0;
                index[o + 1] = Math.Min(i0 + 1, inSize - 1);
                weight[o] = (float)(1 - f);
                weight[o + 1] = (float)f;
            }
        }
        return new AxisWeights(taps, index, weight);
    }
}

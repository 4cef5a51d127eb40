// The ControlNet conditions of the training images, computed once in C#: each 1×H×W image (in [−1, 1], black
// background −1) padded evenly with −1 to the VAE's size, mapped to gray [0, 1], then
//   edges       Canny (σ 1, thresholds 0.2 / 0.4: the defaults of `diffusharp edges`), 1 on an edge, 0 elsewhere
//   silhouette  the filled garment mask (Silhouette.Mask, threshold 0.05: `diffusharp edges --silhouette`)
// and written to all three channels, as diffusers' control images are RGB in [0, 1] (conditioning_channels 3, so
// StableDiffusionControlNetPipeline drives the net with the PNG `diffusharp edges` writes for the same picture).
using DiffuSharp.Data;
using DiffuSharp.Imaging;

namespace DiffuSharp.Training;

public enum ControlCondition { Edges, Silhouette }

/// <summary>One 3×Size×Size control image per training image, values 0 or 1.</summary>
public sealed class ControlImages
{
    public const int Channels = 3;

    public ControlCondition Condition { get; }
    public int Count { get; }
    public int Size { get; }
    /// <summary>(Count, 1, Size, Size): the mask of each image, 1 or 0 (the three channels are copies).</summary>
    public float[] Masks { get; }

    public ControlImages(ControlCondition condition, float[] masks, int count, int size)
    {
        if (count < 0 || size < 1 || masks.Length != (long)count * size * size)
            throw new ArgumentException($"ControlImages: {count} masks of {size}×{size} need {(long)count * size * size} values, got {masks.Length}");
        (Condition, Masks, Count, Size) = (condition, masks, count, size);
    }

    public static string Name(ControlCondition c) => c == ControlCondition.Edges ? "edges" : "silhouette";

    public static ControlCondition Parse(string name) => name switch
    {
        "edges" => ControlCondition.Edges,
        "silhouette" => ControlCondition.Silhouette,
        _ => throw new ArgumentException($"the condition must be edges or silhouette, got '{name}'"),
    };

    /// <summary>The condition of one gray image in [0, 1] (height = width = <paramref name="size"/>).</summary>
    public static bool[] Mask(ControlCondition condition, ReadOnlySpan<float> gray, int size) => condition == ControlCondition.Edges
        ? Canny.Detect(gray, size, size, new CannyOptions())
        : Silhouette.Mask(gray, size, size);

    /// <summary>The condition of every image of <paramref name="data"/> (1 channel, in [−1, 1]) padded by <paramref name="pad"/>.</summary>
    public static ControlImages Compute(ImageDataset data, int pad, ControlCondition condition)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Channels != 1 || data.Height != data.Width) throw new ArgumentException($"ControlImages: needs square gray images, got {data.Channels}×{data.Height}×{data.Width}");
        var padded = ImagePadding.Pad(data, pad);
        int size = padded.Height, len = size * size;
        var masks = new float[(long)data.Count * len];
        Parallel.For(0, data.Count, i =>
        {
            var gray = new float[len];
            var img = padded.Images.AsSpan(i * len, len);
            for (int k = 0; k < len; k++) gray[k] = Math.Clamp((img[k] + 1f) / 2f, 0f, 1f);
            var m = Mask(condition, gray, size);
            for (int k = 0; k < len; k++) masks[(long)i * len + k] = m[k] ? 1f : 0f;
        });
        return new ControlImages(condition, masks, data.Count, size);
    }

    /// <summary>The control images of the given training images: (indices.Length, 3, Size, Size).</summary>
    public Tensor Batch(ReadOnlySpan<int> indices)
    {
        int len = Size * Size;
        var x = new float[indices.Length * Channels * len];
        for (int b = 0; b < indices.Length; b++)
        {
            var m = Masks.AsSpan(indices[b] * len, len);
            for (int c = 0; c < Channels; c++) m.CopyTo(x.AsSpan((b * Channels + c) * len, len));
        }
        return Tensor.FromArray(x, indices.Length, Channels, Size, Size);
    }
}

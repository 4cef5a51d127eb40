// The ControlNet conditions of the training images, computed once in C#: each 1×H×W image (in [−1, 1], black
// background −1) padded evenly with −1 to the VAE's size, mapped to gray [0, 1], then
//   edges       Canny (σ 1, thresholds 0.2 / 0.4: the defaults of `diffusharp edges`), 1 on an edge, 0 elsewhere
//   silhouette  the filled garment mask (Silhouette.Mask, threshold 0.05: `diffusharp edges --silhouette`)
// and written to all three channels, as diffusers' control images are RGB in [0, 1] (conditioning_channels 3, so
// StableDiffusionControlNetPipeline drives the net with the PNG `diffusharp edges` writes for the same picture).
using DiffuSharp.Data;
using DiffuSharp.Imaging;

namespace DiffuSharp.Training;

/// <summary>What a control image shows of a training image.</summary>
public enum ControlCondition
{
    /// <summary>Its Canny edges ("edges").</summary>
    Edges,
    /// <summary>Its filled garment mask ("silhouette").</summary>
    Silhouette,
}

/// <summary>One 3×Size×Size control image per training image, values 0 or 1.</summary>
public sealed class ControlImages
{
    /// <summary>Channels of a control image: 3 (RGB, the three channels equal), as diffusers' ControlNets take.</summary>
    public const int Channels = 3;

    /// <summary>The condition these images show.</summary>
    public ControlCondition Condition { get; }
    /// <summary>How many images (one per training image).</summary>
    public int Count { get; }
    /// <summary>Height and width in pixels (the padded training image's).</summary>
    public int Size { get; }
    /// <summary>(Count, 1, Size, Size): the mask of each image, 1 or 0 (the three channels are copies).</summary>
    public float[] Masks { get; }

    /// <summary>Wraps <paramref name="count"/> masks of <paramref name="size"/>×<paramref name="size"/> (not copied);
    /// throws ArgumentException when the lengths do not match.</summary>
    public ControlImages(ControlCondition condition, float[] masks, int count, int size)
    {
        if (count < 0 || size < 1 || masks.Length != (long)count * size * size)
            throw new ArgumentException($"ControlImages: {count} masks of {size}×{size} need {(long)count * size * size} values, got {masks.Length}");
        (Condition, Masks, Count, Size) = (condition, masks, count, size);
    }

    /// <summary>The condition's name on the command line and in checkpoints: "edges" or "silhouette".</summary>
    public static string Name(ControlCondition c) => c == ControlCondition.Edges ? "edges" : "silhouette";

    /// <summary>The condition named "edges" or "silhouette" (<see cref="Name"/>'s inverse); any other name is an
    /// ArgumentException.</summary>
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

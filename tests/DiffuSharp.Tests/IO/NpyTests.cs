// Npy: reads the numpy-written fixtures in Fixtures/ (v1, v2, v3, '<f4', '<f8', scalar; Fortran order refused),
// writes byte-identical files to numpy's, round-trips bit-exactly, and rejects malformed files with an
// InvalidDataException naming the file and the problem, never allocating what a corrupt length field claims.
using System.Buffers.Binary;
using System.Text;
using DiffuSharp.IO;
using Xunit;

namespace DiffuSharp.Tests.IO;

public sealed class NpyTests : IDisposable
{
    const string Source = "bad.npy";
    static readonly float[] Expected2x3 = [-0.5f, -0.25f, 0f, 0.25f, 0.5f, 0.75f];
    readonly string _dir = Directory.CreateTempSubdirectory("diffusharp-npy-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(TestPaths.Fixtures, name);

    // ---- numpy interop ----

    [Theory]
    [InlineData("f4_2x3.npy")]
    [InlineData("f4_v2.npy")]
    [InlineData("f4_v3.npy")]
    public void Reads_numpy_float32_files_of_every_version(string name)
    {
        var (shape, data) = Npy.ReadFloat32(Fixture(name));
        Assert.Equal([2, 3], shape);
        Assert.Equal(Expected2x3, data);
    }

    [Fact]
    public void Reads_numpy_scalar_and_converts_float64()
    {
        var (shape, data) = Npy.ReadFloat32(Fixture("f4_scalar.npy"));
        Assert.Empty(shape);
        Assert.Equal([1.5f], data);

        (shape, data) = Npy.ReadFloat32(Fixture("f8_4.npy"));
        Assert.Equal([4], shape);
        Assert.Equal([(float)0.1, -2.5f, (float)1e-3, (float)3e38], data);
    }

    [Fact]
    public void Fortran_order_is_refused_with_a_clear_message()
    {
        var e = Assert.Throws<InvalidDataException>(() => Npy.ReadFloat32(Fixture("f4_fortran.npy")));
        Assert.Contains("f4_fortran.npy", e.Message);
        Assert.Contains("Fortran", e.Message);
    }

    [Fact]
    public void Written_files_are_byte_identical_to_numpy()
    {
        string path = Path.Combine(_dir, "ours.npy");
        Npy.WriteFloat32(path, [2, 3], Expected2x3);
        Assert.Equal(File.ReadAllBytes(Fixture("f4_2x3.npy")), File.ReadAllBytes(path));
        Npy.WriteFloat32(path, [], [1.5f]);
        Assert.Equal(File.ReadAllBytes(Fixture("f4_scalar.npy")), File.ReadAllBytes(path));
    }

    // ---- round trips ----

    public static TheoryData<int[]> Shapes => new() { Array.Empty<int>(), new[] { 0 }, new[] { 7 }, new[] { 2, 0, 3 }, new[] { 1, 2, 3, 4 }, new[] { 100_000, 3 } };

    [Theory, MemberData(nameof(Shapes))]
    public void Round_trip_is_bit_exact_and_header_is_64_byte_aligned(int[] shape)
    {
        int count = shape.Aggregate(1, (p, d) => p * d);
        var rng = new Random(count);
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = BitConverter.Int32BitsToSingle(rng.Next() ^ (rng.Next(2) << 31));   // any bits, NaN payloads included
        string path = Path.Combine(_dir, "rt.npy");
        Npy.WriteFloat32(path, shape, data);

        var (shape2, data2) = Npy.ReadFloat32(path);
        Assert.Equal(shape, shape2);
        Assert.Equal(data.Select(BitConverter.SingleToInt32Bits), data2.Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(0, (new FileInfo(path).Length - count * 4L) % 64);
    }

    [Fact]
    public void Write_rejects_a_shape_that_does_not_match_the_data()
    {
        string path = Path.Combine(_dir, "x.npy");
        Assert.Contains("(2, 3)", Assert.Throws<ArgumentException>(() => Npy.WriteFloat32(path, [2, 3], new float[5])).Message);
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => Npy.WriteFloat32(path, [-1, 2], new float[2])).Message);
        Assert.Throws<ArgumentException>(() => Npy.WriteFloat32(path, [int.MaxValue, int.MaxValue, int.MaxValue], new float[1]));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_dir));
    }

    // ---- bad input ----

    /// <summary>Magic, version, length field (real length unless claimed), header text, zero data bytes.</summary>
    static byte[] Build(string header, int dataBytes, byte major = 1, byte minor = 0, ulong? claimed = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        int lengthBytes = major == 1 ? 2 : 4;
        var bytes = new byte[8 + lengthBytes + h.Length + dataBytes];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', major, minor }.CopyTo(bytes, 0);
        if (lengthBytes == 2) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)(claimed ?? (ulong)h.Length));
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)(claimed ?? (ulong)h.Length));
        h.CopyTo(bytes, 8 + lengthBytes);
        return bytes;
    }

    static void Rejects(byte[] bytes, string fragment)
    {
        var e = Assert.Throws<InvalidDataException>(() => Npy.Parse(bytes, Source));
        Assert.StartsWith(Source + ": ", e.Message);
        Assert.Contains(fragment, e.Message);
    }

    const string Good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";

    [Fact]
    public void Hand_built_good_file_parses() => Assert.Equal([2], Npy.Parse(Build(Good, 8), Source).Shape);

    [Theory]
    [InlineData("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", "unsupported dtype '<i4'")]
    [InlineData("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", "unsupported dtype '>f4'")]
    [InlineData("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", "unsupported dtype '<f2'")]
    [InlineData("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", "Fortran")]
    [InlineData("{'fortran_order': False, 'shape': (2,), }", "no 'descr' key")]
    [InlineData("{'descr': '<f4', 'shape': (2,), }", "no 'fortran_order' key")]
    [InlineData("{'descr': '<f4', 'fortran_order': False}", "no 'shape' key")]
    [InlineData("{'descr': (1,), 'fortran_order': False, 'shape': (2,), }", "'descr' must be a dtype string, got (1,)")]
    [InlineData("{'descr': '<f4', 'fortran_order': 'no', 'shape': (2,), }", "'fortran_order' must be True or False")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': '2', }", "'shape' must be a tuple of integers")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "negative dimension")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,), }", "dimension 99999999999 is too large")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999999999,), }", "is too large")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }", "needs more data bytes, file has 8")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", "needs 12 data bytes, file has 8")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "needs 4 data bytes, file has 8")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }", "malformed header dict")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "expected '}'")]
    [InlineData("{'descr' '<f4'}", "expected ':'")]
    [InlineData("{'descr': <f4}", "expected a string, True, False or a tuple")]
    [InlineData("{'descr: '<f4'}", "expected ':'")]
    [InlineData("{'descr': '<f4", "unterminated string")]
    [InlineData("{'descr': '<f4', 'descr': '<f4'}", "key 'descr' appears more than once")]
    [InlineData("{'descr': '<f4'} extra", "unexpected text after the closing '}'")]
    [InlineData("{'d\\'escr': '<f4'}", "escape sequences are not supported")]
    [InlineData("not a dict", "expected '{'")]
    [InlineData("", "expected '{'")]
    public void Malformed_header_is_rejected(string header, string fragment) => Rejects(Build(header, 8), fragment);

    [Fact]
    public void Python2_long_suffix_in_shape_is_accepted() =>
        Assert.Equal([2], Npy.Parse(Build("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", 8), Source).Shape);

    [Fact]
    public void Bad_magic_version_and_lengths_are_rejected()
    {
        Rejects(new byte[5], "missing the \\x93NUMPY magic");
        Rejects(Encoding.ASCII.GetBytes("PK\x03\x04 not numpy at all"), "missing the \\x93NUMPY magic");
        Rejects(Build(Good, 8, major: 4), "unsupported .npy format version 4.0");
        Rejects(Build(Good, 8, major: 1, minor: 1), "version 1.1");
        Rejects(Build(Good, 8, major: 0), "version 0.0");
        Rejects(Build(Good, 8)[..11], "claims");
        Rejects(Build(Good, 8)[..60], "truncated file");
        Rejects(Build(Good, 8, claimed: 65535), "claims 65535 bytes but only");
        Rejects(Build(Good, 8, major: 2)[..11], "file ends inside the header length field");
    }

    [Fact]
    public void Absurd_header_length_is_rejected_without_allocating_it()
    {
        var bytes = Build(Good, 8, major: 2, claimed: uint.MaxValue);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Rejects(bytes, $"claims {uint.MaxValue} bytes");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "rejecting the header allocated over 1 MB");
    }

    [Fact]
    public void Invalid_utf8_in_a_v3_header_is_rejected()
    {
        var bytes = Build(Good, 8, major: 3);
        bytes[14] = 0xFF;
        Rejects(bytes, "not valid UTF-8");
    }

    [Fact]
    public void Random_corruption_only_ever_raises_InvalidDataException()
    {
        byte[] good = File.ReadAllBytes(Fixture("f8_4.npy"));
        var rng = new Random(99);
        for (int n = 0; n < good.Length; n++)
            Assert.Throws<InvalidDataException>(() => Npy.Parse(good[..n], Source));
        for (int trial = 0; trial < 3000; trial++)
        {
            var bytes = (byte[])good.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--)
            {
                int at = rng.Next(bytes.Length);
                bytes[at] = rng.Next(2) == 0 ? (byte)rng.Next(256) : (byte)"{}()',:0123456789-LTF "[rng.Next(22)];
            }
            try { Npy.Parse(bytes, Source); }
            catch (InvalidDataException) { }
        }
    }

    [Fact]
    public void Missing_file_throws_FileNotFoundException_naming_it()
    {
        foreach (string path in new[] { Path.Combine(_dir, "nope.npy"), Path.Combine(_dir, "no", "dir.npy") })
        {
            var e = Assert.Throws<FileNotFoundException>(() => Npy.ReadFloat32(path));
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void Errors_from_files_name_the_path()
    {
        string path = Path.Combine(_dir, "truncated.npy");
        File.WriteAllBytes(path, File.ReadAllBytes(Fixture("f4_2x3.npy"))[..140]);
        var e = Assert.Throws<InvalidDataException>(() => Npy.ReadFloat32(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains("needs 24 data bytes, file has 12", e.Message);
    }
}

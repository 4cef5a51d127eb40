// Malformed PNGs: each must raise InvalidDataException naming the source and the problem, never anything else.
using System.Buffers.Binary;
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public sealed class PngCorruptTests
{
    static readonly byte[] Valid = Png.Encode(PngRoundTripTests.RandomImage(7, 5, 3, seed: 11));

    static InvalidDataException Fails(byte[] bytes, string expectedProblem)
    {
        var e = Assert.Throws<InvalidDataException>(() => Png.Decode(bytes, "bad.png"));
        Assert.StartsWith("bad.png: ", e.Message);
        Assert.Contains(expectedProblem, e.Message);
        return e;
    }

    [Fact]
    public void Not_a_png() => Fails("GIF89a and some more bytes"u8.ToArray(), "signature is missing");

    [Fact]
    public void Empty() => Fails([], "too short for the signature");

    [Fact]
    public void Every_truncation_is_rejected()
    {
        for (int n = 0; n < Valid.Length; n++)
            Assert.Throws<InvalidDataException>(() => Png.Decode(Valid[..n], "cut.png"));
    }

    [Fact]
    public void Truncated_names_the_chunk() => Fails(Valid[..(Valid.Length - 20)], "truncated");

    [Fact]
    public void Bad_crc()
    {
        var b = (byte[])Valid.Clone();
        b[8 + 8 + 13 + 4 + 8 + 3] ^= 0x40;                          // a byte inside the first IDAT's data
        Fails(b, "CRC mismatch in chunk IDAT");
    }

    [Theory]
    [InlineData(100000u, 10u, "exceeds the 16384×16384 limit")]
    [InlineData(10u, 0x7FFFFFFFu, "exceeds the 16384×16384 limit")]
    [InlineData(0u, 10u, "zero side")]
    public void Absurd_dimensions(uint w, uint h, string problem)
        => Fails(PngTestFiles.FromRaw(PngTestFiles.Ihdr(w, h, 8, 2), new byte[4]), problem);

    [Fact]
    public void Huge_claim_with_tiny_data_is_refused_before_allocating()
    {
        // 16384×16384 RGBA would be 1 GiB of pixels; 10 bytes of IDAT cannot hold it (even with the pixel limit raised).
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => Png.Decode(PngTestFiles.FromRaw(PngTestFiles.Ihdr(16384, 16384, 8, 6), new byte[1]), "bad.png", maxPixels: long.MaxValue));
        Assert.Contains("cannot inflate", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
    }

    [Theory]
    [InlineData(3, 0, "bit depth 3")]
    [InlineData(16, 3, "colour type 3 with bit depth 16")]
    [InlineData(8, 5, "colour type 5")]
    [InlineData(4, 2, "colour type 2 with bit depth 4")]
    public void Bad_depth_or_colour_type(byte depth, byte colorType, string problem)
        => Fails(PngTestFiles.FromRaw(PngTestFiles.Ihdr(2, 2, depth, colorType), new byte[8]), problem);

    [Fact]
    public void Bad_interlace_compression_and_filter_methods()
    {
        var ihdr = PngTestFiles.Ihdr(1, 1, 8, 0, interlace: 2);
        Fails(PngTestFiles.FromRaw(ihdr, [0, 0]), "interlace method 2");
        ihdr = PngTestFiles.Ihdr(1, 1, 8, 0); ihdr[10] = 1;
        Fails(PngTestFiles.FromRaw(ihdr, [0, 0]), "compression method 1");
        ihdr = PngTestFiles.Ihdr(1, 1, 8, 0); ihdr[11] = 1;
        Fails(PngTestFiles.FromRaw(ihdr, [0, 0]), "filter method 1");
        Fails(PngTestFiles.Build([("IHDR", new byte[12]), ("IEND", [])]), "IHDR has 12 bytes");
    }

    [Fact]
    public void Too_little_image_data() => Fails(PngTestFiles.FromRaw(PngTestFiles.Ihdr(3, 3, 8, 0), new byte[4 * 3 - 1]), "ends early");

    [Fact]
    public void Too_much_image_data() => Fails(PngTestFiles.FromRaw(PngTestFiles.Ihdr(3, 3, 8, 0), new byte[4 * 3 + 1]), "more image data");

    [Fact]
    public void Unknown_row_filter() => Fails(PngTestFiles.FromRaw(PngTestFiles.Ihdr(1, 2, 8, 0), [0, 5, 7, 9]), "row 1 has unknown filter type 7");

    [Fact]
    public void Corrupt_zlib_stream()
    {
        var chunks = PngTestFiles.Chunks(Valid);
        int i = chunks.FindIndex(c => c.Type == "IDAT");
        chunks[i] = ("IDAT", [0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);  // valid zlib header, invalid block type
        Fails(PngTestFiles.Build(chunks), "zlib");
    }

    [Fact]
    public void Palette_problems()
    {
        var ihdr = PngTestFiles.Ihdr(2, 1, 8, 3);
        Fails(PngTestFiles.FromRaw(ihdr, [0, 0, 0]), "no PLTE");
        Fails(PngTestFiles.FromRaw(ihdr, [0, 0, 2], ("PLTE", new byte[6])), "palette index 2 is out of range");
        Fails(PngTestFiles.FromRaw(ihdr, [0, 0, 0], ("PLTE", new byte[7])), "PLTE has 7 bytes");
        Fails(PngTestFiles.FromRaw(ihdr, [0, 0, 0], ("PLTE", new byte[6]), ("tRNS", new byte[3])), "tRNS has 3 alphas for a 2-entry palette");
        Fails(PngTestFiles.FromRaw(PngTestFiles.Ihdr(2, 1, 1, 3), [0, 0], ("PLTE", new byte[9])), "more than 2 for bit depth 1");
    }

    [Fact]
    public void Chunk_order_problems()
    {
        var ok = PngTestFiles.Chunks(Valid);
        Fails(PngTestFiles.Build(ok.Where(c => c.Type != "IEND")), "no IEND");
        Fails(PngTestFiles.Build(ok.Where(c => c.Type != "IDAT")), "no IDAT");
        Fails(PngTestFiles.Build(ok.Skip(1)), "first chunk is IDAT, expected IHDR");
        Fails(PngTestFiles.Build([ok[0], ("ABCD", new byte[2]), .. ok.Skip(1)]), "unknown critical chunk ABCD");
        var withText = PngTestFiles.Build([ok[0], ("tEXt", "Comment\0hi"u8.ToArray()), .. ok.Skip(1)]);
        Assert.Equal(7, Png.Decode(withText, "ok.png").Width);      // ancillary chunks are skipped
    }

    [Fact]
    public void Random_mutations_never_escape_as_other_exceptions()
    {
        // Flip bytes and then repair the CRCs, so the damage reaches IHDR, zlib and filter parsing.
        var rng = new Random(1234);
        var sources = new[] { Valid, Png.Encode(PngRoundTripTests.RandomImage(6, 9, 2, 5), PngFilter.Paeth) };
        for (int iter = 0; iter < 400; iter++)
        {
            var chunks = PngTestFiles.Chunks(sources[iter % 2]);
            int ci = rng.Next(chunks.Count - 1);
            var data = (byte[])chunks[ci].Data.Clone();
            if (data.Length == 0) continue;
            for (int k = 0; k <= rng.Next(3); k++) data[rng.Next(data.Length)] = (byte)rng.Next(256);
            chunks[ci] = (chunks[ci].Type, data);
            try { Png.Decode(PngTestFiles.Build(chunks), "fuzz.png"); }
            catch (InvalidDataException e) { Assert.StartsWith("fuzz.png: ", e.Message); }
        }
    }

    [Fact]
    public void Missing_file_names_the_path()
    {
        var e = Assert.ThrowsAny<IOException>(() => Png.Read("/nonexistent/folder/x.png"));
        Assert.Contains("/nonexistent/folder/x.png", e.Message);
    }

    [Fact]
    public void Colour_key_in_16_bit_gray_compares_all_16_bits()
    {
        var ihdr = PngTestFiles.Ihdr(2, 1, 16, 0);
        var trns = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(trns, 0x1234);
        var img = Png.Decode(PngTestFiles.FromRaw(ihdr, [0, 0x12, 0x34, 0x12, 0x35], ("tRNS", trns)), "key16");
        Assert.Equal(new byte[] { 0x12, 0, 0x12, 255 }, img.Pixels);
    }
}

// Encoder → decoder round trips: every colour type, odd sizes, every forced filter and the adaptive choice;
// atomic Write; the filter primitives against each other.
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public sealed class PngRoundTripTests
{
    internal static Image8 RandomImage(int w, int h, int c, int seed)
    {
        var rng = new Random(seed);
        var px = new byte[w * h * c];
        // Half noise, half smooth gradient, so every filter has something to win on.
        for (int i = 0; i < px.Length; i++)
            px[i] = i % 7 < 3 ? (byte)rng.Next(256) : (byte)(i * 3 + i / (w * c));
        return new Image8(w, h, c, px);
    }

    public static IEnumerable<object?[]> Cases()
    {
        foreach (int c in new[] { 1, 2, 3, 4 })
            foreach (var (w, h) in new[] { (1, 1), (3, 5), (17, 33) })
                foreach (PngFilter? f in new PngFilter?[] { null, PngFilter.None, PngFilter.Sub, PngFilter.Up, PngFilter.Average, PngFilter.Paeth })
                    yield return [c, w, h, f];
    }

    [Theory, MemberData(nameof(Cases))]
    public void Round_trip_is_exact(int channels, int w, int h, PngFilter? filter)
    {
        var img = RandomImage(w, h, channels, seed: w * 100 + h * 10 + channels);
        var back = Png.Decode(Png.Encode(img, filter), "roundtrip");
        Assert.Equal((w, h, channels), (back.Width, back.Height, back.Channels));
        Assert.Equal(img.Pixels, back.Pixels);
    }

    [Theory, InlineData(1), InlineData(2), InlineData(3), InlineData(4)]
    public void Forced_filter_is_written_on_every_row(int filter)
    {
        var img = RandomImage(9, 6, 3, seed: filter);
        var bytes = Png.Encode(img, (PngFilter)filter);
        var raw = PngTestFiles.InflateIdat(bytes);
        int stride = 1 + 9 * 3;
        Assert.Equal(6 * stride, raw.Length);
        for (int y = 0; y < 6; y++) Assert.Equal(filter, raw[y * stride]);
    }

    [Fact]
    public void Adaptive_filter_picks_sub_for_a_horizontal_ramp()
    {
        var px = new byte[32 * 4];
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 32; x++) px[y * 32 + x] = (byte)(x * 7 + y * 50);
        var raw = PngTestFiles.InflateIdat(Png.Encode(new Image8(32, 4, 1, px)));
        Assert.Equal((byte)PngFilter.Sub, raw[0]);                 // first row: Up/Paeth see zeros above
    }

    [Fact]
    public void Many_idat_chunks_round_trip()
    {
        var img = RandomImage(40, 30, 4, seed: 7);
        var bytes = PngEncoder.Encode(img, null, maxIdatChunk: 50);
        Assert.True(PngTestFiles.Chunks(bytes).Count(c => c.Type == "IDAT") > 10);
        Assert.Equal(img.Pixels, Png.Decode(bytes, "multi").Pixels);
    }

    [Fact]
    public void Unfilter_reverses_filter_for_every_type_and_stride()
    {
        var rng = new Random(3);
        foreach (int bpp in new[] { 1, 2, 3, 4, 6, 8 })
            for (byte f = 0; f < 5; f++)
            {
                var prev = new byte[5 * bpp]; var row = new byte[5 * bpp];
                rng.NextBytes(prev); rng.NextBytes(row);
                var filtered = new byte[1 + row.Length];
                PngEncoder.Filter(f, row, prev, bpp, filtered);
                var back = filtered[1..];
                PngDecoder.Unfilter(filtered[0], back, prev, bpp, "t", 0);
                Assert.Equal(row, back);
            }
    }

    // Spec §9.4: ties go to left, then above, then upper-left.
    [Theory, InlineData(0, 3, 1, 3), InlineData(0, 3, 2, 0), InlineData(5, 5, 5, 5), InlineData(100, 50, 200, 50)]
    public void Paeth_breaks_ties_in_the_specified_order(int a, int b, int c, int expected)
        => Assert.Equal(expected, PngDecoder.Paeth((byte)a, (byte)b, (byte)c));

    [Fact]
    public void Crc_matches_the_known_iend_value()
        => Assert.Equal(0xAE426082u, PngCrc.Compute("IEND"u8));

    [Fact]
    public void Write_is_atomic_and_overwrites()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "a.png");
        File.WriteAllText(path, "old contents");
        var img = RandomImage(5, 4, 3, seed: 1);
        Png.Write(path, img);
        Assert.Equal(img.Pixels, Png.Read(path).Pixels);
        Assert.Equal(["a.png"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));   // no temp file left behind
        var e = Assert.Throws<DirectoryNotFoundException>(() => Png.Write(Path.Combine(dir.Path, "no", "b.png"), img));
        Assert.Contains("b.png", e.Message);
    }

    [Fact]
    public void Encode_rejects_a_pixel_buffer_of_the_wrong_size()
    {
        var e = Assert.Throws<ArgumentException>(() => Png.Encode(new Image8(3, 3, 3, new byte[26])));
        Assert.Contains("needs 27 bytes, got 26", e.Message);
        Assert.Throws<ArgumentException>(() => Png.Encode(new Image8(3, 3, 5, new byte[45])));
        Assert.Throws<ArgumentOutOfRangeException>(() => Png.Encode(RandomImage(2, 2, 1, 0), (PngFilter)9));
    }

    [Fact]
    public void WithChannels_converts_as_documented()
    {
        var rgba = new Image8(2, 1, 4, [255, 0, 0, 255, 0, 0, 0, 0]);   // opaque red, fully transparent black
        Assert.Equal(new byte[] { 255, 0, 0, 255, 255, 255 }, rgba.WithChannels(3).Pixels);
        Assert.Equal(new byte[] { 76, 255 }, rgba.WithChannels(1).Pixels); // BT.601 luma of red; transparent → white
        Assert.Equal(new byte[] { 76, 255, 0, 0 }, rgba.WithChannels(2).Pixels);     // alpha kept, not composited
        var gray = new Image8(1, 1, 1, [9]);
        Assert.Equal(new byte[] { 9, 9, 9, 255 }, gray.WithChannels(4).Pixels);
        Assert.Equal(new byte[] { 127 }, new Image8(1, 1, 2, [0, 128]).WithChannels(1).Pixels);   // half-transparent black over white
    }
}

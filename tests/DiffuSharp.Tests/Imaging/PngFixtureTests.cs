// Decoding PNGs written by Pillow and ImageMagick (Fixtures/png, made by make_fixtures.py): every colour type,
// bit depths 1/2/4/8/16, palettes with tRNS, colour keys, Adam7 interlacing and split IDAT streams.
using System.Text.Json;
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public sealed class PngFixtureTests
{
    static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "Fixtures", "png");

    public sealed record Fixture(string File, string Expected, int Width, int Height, int Channels, int ColorType,
                                 int BitDepth, bool Interlaced, int IdatChunks, string Tool)
    {
        public override string ToString() => File;
    }

    static IReadOnlyList<Fixture> Manifest()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder, "manifest.json")));
        return doc.RootElement.GetProperty("fixtures").Deserialize<List<Fixture>>(new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
    }

    public static IEnumerable<object[]> Fixtures() => Manifest().Select(f => new object[] { f.File });

    [Theory, MemberData(nameof(Fixtures))]
    public void Decodes_fixture_to_expected_pixels(string file)
    {
        var f = Manifest().Single(m => m.File == file);
        var img = Png.Read(Path.Combine(Folder, f.File));
        Assert.Equal((f.Width, f.Height, f.Channels), (img.Width, img.Height, img.Channels));
        Assert.Equal(File.ReadAllBytes(Path.Combine(Folder, f.Expected)), img.Pixels);
    }

    [Fact]
    public void Manifest_covers_every_colour_type_depth_and_interlacing()
    {
        var m = Manifest();
        Assert.True(m.Count >= 20);
        foreach (int ct in new[] { 0, 2, 3, 4, 6 }) Assert.Contains(m, f => f.ColorType == ct);
        foreach (int bd in new[] { 1, 2, 4, 8, 16 }) Assert.Contains(m, f => f.BitDepth == bd);
        Assert.Contains(m, f => f.Interlaced);
        Assert.Contains(m, f => f.IdatChunks > 1);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void Reencoding_a_fixture_round_trips(string file)
    {
        var img = Png.Read(Path.Combine(Folder, file));
        Assert.Equal(img.Pixels, Png.Decode(Png.Encode(img), file).Pixels);
    }
}

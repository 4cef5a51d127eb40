// diffusharp edges: a PNG in, the Canny edges (or the filled silhouette) out, equal to the library functions; bad
// input is one error line.
using DiffuSharp.Imaging;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class EdgesCommandTests
{
    static Image8 Ring()
    {
        var px = new byte[24 * 20];
        for (int y = 4; y < 16; y++)
            for (int x = 5; x < 19; x++)
                px[y * 24 + x] = (byte)(y is 4 or 5 or 14 or 15 || x is 5 or 6 or 17 or 18 ? 220 : 0);   // a hollow frame
        return new Image8(24, 20, 1, px);
    }

    [Fact]
    public void Writes_the_edges_the_library_finds()
    {
        using var dir = new TempDir();
        string input = Path.Combine(dir.Path, "ring.png"), output = Path.Combine(dir.Path, "edges.png");
        Png.Write(input, Ring());
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["edges", input, "--out", output, "--low", "0.1", "--high", "0.3", "--sigma", "0.8"]);
        Assert.True(code == 0, stderr);
        var expected = Canny.Detect(Ring(), new CannyOptions(0.8, 0.1, 0.3));
        var got = Png.Read(output);
        Assert.Equal(expected.Pixels, got.Pixels);
        Assert.Contains($"{expected.Pixels.Count(b => b == 255)} edge pixels", stdout);
        Assert.True(expected.Pixels.Count(b => b == 255) > 40);
    }

    [Fact]
    public void Silhouette_fills_the_frame()
    {
        using var dir = new TempDir();
        string input = Path.Combine(dir.Path, "ring.png"), output = Path.Combine(dir.Path, "mask.png");
        Png.Write(input, Ring());
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["edges", input, "--silhouette", "--out", output]);
        Assert.True(code == 0, stderr);
        var got = Png.Read(output);
        Assert.Equal(12 * 14, got.Pixels.Count(b => b == 255));                // the whole frame, hole included
        Assert.Equal(255, got.Pixels[10 * 24 + 12]);
        Assert.Contains("silhouette covers 35.0% of the image", stdout);
    }

    [Theory]
    [InlineData("missing-image", "image not found")]
    [InlineData("no-image", "give the input PNG first")]
    [InlineData("low-high", "--high (0.1) must be at least --low (0.5)")]
    [InlineData("not-png-out", "--out must be a .png file")]
    [InlineData("no-folder", "folder")]
    [InlineData("not-a-png", "not a valid PNG")]
    public void Bad_input_is_one_error_line(string kind, string expected)
    {
        using var dir = new TempDir();
        string input = Path.Combine(dir.Path, "ring.png"), output = Path.Combine(dir.Path, "e.png");
        Png.Write(input, Ring());
        string junk = Path.Combine(dir.Path, "junk.png");
        File.WriteAllText(junk, "hello");
        string[] args = kind switch
        {
            "missing-image" => ["edges", Path.Combine(dir.Path, "nope.png"), "--out", output],
            "no-image" => ["edges", "--out", output],
            "low-high" => ["edges", input, "--out", output, "--low", "0.5", "--high", "0.1"],
            "not-png-out" => ["edges", input, "--out", Path.Combine(dir.Path, "e.jpg")],
            "no-folder" => ["edges", input, "--out", Path.Combine(dir.Path, "sub", "e.png")],
            _ => ["edges", junk, "--out", output],
        };
        TrainSampleEndToEndTests.AssertOneLineError(args, expected);
        Assert.False(File.Exists(output));
    }
}

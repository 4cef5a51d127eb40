// ImageGrid: the float ↔ byte mapping and the tile layout.
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public sealed class ImageGridTests
{
    [Theory]
    [InlineData(-1f, 0)]
    [InlineData(1f, 255)]
    [InlineData(0f, 128)]                                          // 127.5 rounds half-to-even
    [InlineData(-3f, 0)]
    [InlineData(7f, 255)]
    [InlineData(float.NaN, 0)]
    [InlineData(float.PositiveInfinity, 255)]
    [InlineData(-0.99f, 1)]                                        // 1.275 → 1
    public void ToByte_maps_minus_one_one_to_bytes(float x, int expected) => Assert.Equal(expected, ImageGrid.ToByte(x));

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "+inf")]
    [InlineData(float.NegativeInfinity, "-inf")]
    public void Make_refuses_non_finite_samples_naming_where_instead_of_writing_black(float bad, string word)
    {
        var samples = new float[2 * 3 * 4 * 5];
        samples[60 + 1 * 20 + 2 * 5 + 3] = bad;                         // sample 1, channel 1, y 2, x 3
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.Make(samples, 2, 3, 4, 5));
        Assert.Contains($"sample 1 holds {word} at (c 1, y 2, x 3)", e.Message);
    }

    [Fact]
    public void ToFloat_then_ToByte_is_exact_for_every_byte()
    {
        var px = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var f = ImageGrid.ToFloat(new Image8(16, 16, 1, px), 1);
        Assert.Equal(-1f, f[0]);
        Assert.Equal(1f, f[255]);
        for (int i = 0; i < 256; i++) Assert.Equal(i, ImageGrid.ToByte(f[i]));
    }

    [Fact]
    public void ToFloat_is_chw()
    {
        var img = new Image8(2, 1, 3, [0, 51, 102, 153, 204, 255]);     // two RGB pixels
        var f = ImageGrid.ToFloat(img, 3);
        float B(int v) => v / 127.5f - 1f;
        Assert.Equal(new[] { B(0), B(153), B(51), B(204), B(102), B(255) }, f);
    }

    [Fact]
    public void Grid_layout_padding_and_empty_cells()
    {
        const int n = 5, c = 3, h = 2, w = 3;
        var s = new float[n * c * h * w];
        for (int k = 0; k < n; k++)                                 // image k: channel ch is constant k·0.1 − ch·0.5
            for (int ch = 0; ch < c; ch++)
                s.AsSpan((k * c + ch) * h * w, h * w).Fill(k * 0.1f - ch * 0.5f);
        var g = ImageGrid.Make(s, n, c, h, w);                       // columns ⌈√5⌉ = 3, rows 2, padding 2
        Assert.Equal((3 * (w + 2) + 2, 2 * (h + 2) + 2, 3), (g.Width, g.Height, g.Channels));
        byte At(int x, int y, int ch) => g.Pixels[(y * g.Width + x) * 3 + ch];
        // image 4 is at row 1, column 1: x0 = 2 + 1·5 = 7, y0 = 2 + 1·4 = 6
        for (int ch = 0; ch < 3; ch++)
            Assert.Equal(ImageGrid.ToByte(0.4f - ch * 0.5f), At(7 + w - 1, 6 + h - 1, ch));
        Assert.Equal(0, At(0, 0, 0));                                // border
        Assert.Equal(0, At(7 + w, 6, 1));                            // gap between tiles
        Assert.Equal(0, At(12 + 1, 6 + 1, 2));                       // sixth cell is empty
    }

    [Fact]
    public void Gray_grid_with_explicit_columns()
    {
        var s = new float[4 * 1 * 1 * 1] { -1, -0.5f, 0.5f, 1 };
        var g = ImageGrid.Make(s, 4, 1, 1, 1, columns: 4, padding: 1, padValue: 9);
        Assert.Equal((9, 3, 1), (g.Width, g.Height, g.Channels));
        Assert.Equal(new byte[] { 9, 0, 9, 64, 9, 191, 9, 255, 9 }, g.Pixels[9..18]);
    }

    [Fact]
    public void Grid_rejects_bad_shapes()
    {
        Assert.Throws<ArgumentException>(() => ImageGrid.Make(new float[10], 1, 2, 5, 1));
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.Make(new float[10], 1, 3, 2, 2));
        Assert.Contains("needs 12 floats, got 10", e.Message);
    }
}

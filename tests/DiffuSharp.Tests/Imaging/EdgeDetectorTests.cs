// The Canny edge detector that makes ControlNet control images: a bright square on black gives one closed,
// one-pixel-wide outline on the square's border and nothing in the flat areas; thresholds are checked.
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public sealed class EdgeDetectorTests
{
    static Image8 Square(int size, int lo, int hi)
    {
        var img = Image8.Blank(size, size, 1);
        for (int y = lo; y < hi; y++) for (int x = lo; x < hi; x++) img.Pixels[y * size + x] = 200;
        return img;
    }

    [Fact]
    public void A_square_gives_a_thin_outline_on_its_border_only()
    {
        var edges = EdgeDetector.Detect(Square(40, 12, 28));
        Assert.Equal((40, 40, 3), (edges.Width, edges.Height, edges.Channels));
        bool On(int x, int y) => edges.Pixels[(y * 40 + x) * 3] == 255;
        int count = 0;
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++)
            {
                if (!On(x, y)) continue;
                count++;
                // every edge pixel lies within two pixels of the square's border (columns/rows 12 and 27 are its first and last)
                bool NearLine(int v) => Math.Abs(v - 11.5) <= 2 || Math.Abs(v - 27.5) <= 2;
                bool nearBorder = (NearLine(x) && y >= 10 && y <= 29) || (NearLine(y) && x >= 10 && x <= 29);
                Assert.True(nearBorder, $"edge pixel at ({x}, {y}) is not on the square's border");
            }
        // each of the 4 sides (16 px) is found, thinned to about one pixel
        Assert.InRange(count, 4 * 14, 4 * 16 * 2);
        for (int i = 14; i < 26; i++)
        {
            Assert.True(On(11, i) || On(12, i), $"left side missing at y = {i}");
            Assert.True(On(27, i) || On(28, i), $"right side missing at y = {i}");
            Assert.True(On(i, 11) || On(i, 12), $"top side missing at x = {i}");
            Assert.True(On(i, 27) || On(i, 28), $"bottom side missing at x = {i}");
        }
    }

    [Fact]
    public void A_flat_image_has_no_edges_and_bad_thresholds_are_refused()
    {
        var flat = Image8.Blank(16, 16, 3);
        Assert.DoesNotContain(EdgeDetector.Detect(flat).Pixels, b => b != 0);
        Assert.Throws<ArgumentException>(() => EdgeDetector.Detect(flat, low: 0.5, high: 0.2));
        Assert.Throws<ArgumentException>(() => EdgeDetector.Detect(flat, low: double.NaN));
    }

    [Fact]
    public void Cover_scales_and_centre_crops()
    {
        var wide = Image8.Blank(40, 20, 1);
        for (int y = 0; y < 20; y++) for (int x = 20; x < 40; x++) wide.Pixels[y * 40 + x] = 255;   // right half white
        var c = EdgeDetector.Cover(wide, 10, 10);                                                // 20×10 scaled, middle 10 columns kept
        Assert.Equal((10, 10, 1), (c.Width, c.Height, c.Channels));
        Assert.Equal(0, c.Pixels[5 * 10 + 0]);
        Assert.Equal(255, c.Pixels[5 * 10 + 9]);
    }
}

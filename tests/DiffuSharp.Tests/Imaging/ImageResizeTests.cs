using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public class ImageResizeTests
{
    [Fact]
    public void Cover_scales_and_centre_crops()
    {
        var wide = Image8.Blank(40, 20, 1);
        for (int y = 0; y < 20; y++) for (int x = 20; x < 40; x++) wide.Pixels[y * 40 + x] = 255;   // right half white
        var c = ImageResize.Cover(wide, 10, 10);                                                // 20×10 scaled, middle 10 columns kept
        Assert.Equal((10, 10, 1), (c.Width, c.Height, c.Channels));
        Assert.Equal(0, c.Pixels[5 * 10 + 0]);
        Assert.Equal(255, c.Pixels[5 * 10 + 9]);
    }
}

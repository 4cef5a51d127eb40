// ImageFolder on PNGs written by our encoder: resize to the short side, centre crop, channel conversion, errors.
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Data;

public sealed class ImageFolderTests
{
    static float F(double byteValue) => (float)(byteValue / 127.5 - 1);

    [Fact]
    public void Downscale_is_area_average_then_centre_crop()
    {
        using var dir = new TempDir();
        // 8 wide × 4 high, value 10x + 40y: halving gives 4×2, the centre 2×2 crop covers source columns 2..5.
        var px = new byte[8 * 4];
        for (int y = 0; y < 4; y++) for (int x = 0; x < 8; x++) px[y * 8 + x] = (byte)(10 * x + 40 * y);
        Png.Write(Path.Combine(dir.Path, "a.png"), new Image8(8, 4, 1, px));
        var ds = ImageFolder.Load(dir.Path, imageSize: 2, channels: 1);
        Assert.Equal((1, 1, 2, 2), (ds.Count, ds.Channels, ds.Height, ds.Width));
        // mean of the 2×2 block at (x 2..3, y 0..1) = 10·2.5 + 40·0.5 = 45, and so on
        float[] expected = [F(45), F(65), F(125), F(145)];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], ds.Images[i], 1e-5f);
    }

    [Fact]
    public void Tall_image_is_cropped_vertically_with_a_non_integer_scale()
    {
        using var dir = new TempDir();
        var px = new byte[3 * 9];                                   // 3 wide × 9 high, constant rows
        for (int y = 0; y < 9; y++) for (int x = 0; x < 3; x++) px[y * 3 + x] = (byte)(y * 20);
        Png.Write(Path.Combine(dir.Path, "t.png"), new Image8(3, 9, 1, px));
        var ds = ImageFolder.Load(dir.Path, imageSize: 2, channels: 1);
        // scale 1.5: resized 2×6, crop rows 2..3 cover source rows [3, 4.5) and [4.5, 6)
        Assert.Equal(F((60 + 0.5 * 80) / 1.5), ds.Images[0], 1e-5f);
        Assert.Equal(F((0.5 * 80 + 100) / 1.5), ds.Images[2], 1e-5f);
        Assert.Equal(ds.Images[0], ds.Images[1]);
    }

    [Fact]
    public void Upscale_is_bilinear_with_half_pixel_centres()
    {
        using var dir = new TempDir();
        Png.Write(Path.Combine(dir.Path, "u.png"), new Image8(2, 1, 1, [0, 200]));
        var ds = ImageFolder.Load(dir.Path, imageSize: 4, channels: 1);   // 2×1 → 8×4, crop columns 2..5
        // source x for output t: (t + ½)/4 − ½ → t = 2..5: 0.125, 0.375, 0.625, 0.875
        float[] row = [F(25), F(75), F(125), F(175)];
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++) Assert.Equal(row[x], ds.Images[y * 4 + x], 1e-5f);
    }

    [Fact]
    public void Channels_are_converted_and_files_are_sorted_and_recursive()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, "sub"));
        Png.Write(Path.Combine(dir.Path, "b.png"), new Image8(1, 1, 4, [255, 0, 0, 0]));     // transparent → white
        Png.Write(Path.Combine(dir.Path, "a.PNG"), new Image8(1, 1, 1, [51]));               // gray → RGB
        Png.Write(Path.Combine(dir.Path, "sub", "c.png"), new Image8(1, 1, 3, [0, 0, 255]));
        File.WriteAllText(Path.Combine(dir.Path, "notes.txt"), "ignored");
        var ds = ImageFolder.Load(dir.Path, imageSize: 1, channels: 3);
        Assert.Equal(3, ds.Count);
        Assert.Null(ds.Labels);
        Assert.Equal(new[] { F(51), F(51), F(51), 1f, 1f, 1f, -1f, -1f, 1f }, ds.Images);   // a.PNG, b.png, sub/c.png
        Assert.Equal(2, ImageFolder.Load(dir.Path, 1, 1, recursive: false).Count);
        Assert.Equal(F(29), ImageFolder.Load(Path.Combine(dir.Path, "sub"), 1, 1).Images[0], 1e-6f);   // BT.601 luma of blue
    }

    [Fact]
    public void A_bad_png_is_named()
    {
        using var dir = new TempDir();
        Png.Write(Path.Combine(dir.Path, "good.png"), new Image8(2, 2, 1, new byte[4]));
        File.WriteAllText(Path.Combine(dir.Path, "fake.png"), "this is text");
        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(dir.Path, 2, 1));
        Assert.Contains("fake.png", e.Message);
    }

    [Fact]
    public void Missing_or_empty_folder()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "x.txt"), "");
        var e = Assert.Throws<DatasetNotFoundException>(() => ImageFolder.Load(dir.Path, 8, 3));
        Assert.Contains("1 other files, e.g. x.txt", e.Message);
        Assert.Throws<DatasetNotFoundException>(() => ImageFolder.Load(Path.Combine(dir.Path, "nope"), 8, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageFolder.Load(dir.Path, 8, 2));
    }
}

// ImageFile: every format read (tiny images made here with ImageSharp's encoders), PNG and JPEG written, the pixel
// limit checked against the header before decoding, and the messages naming the file.
using DiffuSharp.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public sealed class ImageFileTests
{
    // 6×4, a few distinct colours (GIF's palette keeps them exact), one pixel half transparent when alpha is asked for
    internal static Image<Rgba32> Sample(bool gray = false, bool alpha = false, int w = 6, int h = 4)
    {
        var img = new Image<Rgba32>(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                byte v = (byte)(40 * ((x + y) % 5));
                img[x, y] = gray ? new Rgba32(v, v, v) : new Rgba32(v, (byte)(255 - v), (byte)(x * 30), 255);
            }
        if (alpha) img[1, 1] = new Rgba32(10, 20, 30, 128);
        return img;
    }

    internal static byte[] Encode(Image<Rgba32> img, IImageEncoder encoder)
    {
        var ms = new MemoryStream();
        img.Save(ms, encoder);
        return ms.ToArray();
    }

    static void SamePixels(Image<Rgba32> expected, Image8 actual, int tolerance)
    {
        Assert.Equal((expected.Width, expected.Height), (actual.Width, actual.Height));
        var rgba = actual.WithChannels(4).Pixels;
        for (int y = 0; y < expected.Height; y++)
            for (int x = 0; x < expected.Width; x++)
            {
                var p = expected[x, y];
                int i = (y * expected.Width + x) * 4;
                foreach (var (want, got) in new[] { (p.R, rgba[i]), (p.G, rgba[i + 1]), (p.B, rgba[i + 2]), (p.A, rgba[i + 3]) })
                    Assert.True(Math.Abs(want - got) <= tolerance, $"pixel ({x}, {y}): {want} vs {got}");
            }
    }

    public static IEnumerable<object[]> LosslessFormats =>
    [
        ["BMP", new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 }, false, 3],
        ["BMP32", new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel32, SupportTransparency = true }, true, 4],
        ["GIF", new GifEncoder(), false, 3],
        ["WebP", new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }, true, 4],
        ["TIFF", new TiffEncoder(), false, 3],
        ["PNG", new SixLabors.ImageSharp.Formats.Png.PngEncoder { ColorType = SixLabors.ImageSharp.Formats.Png.PngColorType.Rgb }, false, 3],
    ];

    [Theory, MemberData(nameof(LosslessFormats))]
    public void Lossless_formats_read_back_exactly(string name, IImageEncoder encoder, bool alpha, int channels)
    {
        using var img = Sample(alpha: alpha);
        var decoded = ImageFile.Decode(Encode(img, encoder), $"x.{name}");
        Assert.Equal(channels, decoded.Channels);
        SamePixels(img, decoded, 0);
    }

    [Fact]
    public void Jpeg_reads_colour_and_gray()
    {
        using var colour = Sample(w: 16, h: 16);
        var c = ImageFile.Decode(Encode(colour, new JpegEncoder { Quality = 100, ColorType = JpegColorType.YCbCrRatio444 }), "c.jpg");
        Assert.Equal(3, c.Channels);
        SamePixels(colour, c, 12);
        using var gray = Sample(gray: true, w: 16, h: 16);
        var g = ImageFile.Decode(Encode(gray, new JpegEncoder { Quality = 100, ColorType = JpegColorType.Luminance }), "g.jpg");
        Assert.Equal(1, g.Channels);
        SamePixels(gray, g, 6);
    }

    [Fact]
    public void Gif_reads_its_first_frame()
    {
        using var first = Sample();
        using var second = Sample(gray: true);
        first.Frames.AddFrame(second.Frames.RootFrame);
        var d = ImageFile.Decode(Encode(first, new GifEncoder()), "anim.gif");
        using var expected = Sample();
        SamePixels(expected, d, 0);
    }

    [Fact]
    public void Bytes_of_no_known_format_name_the_file()
    {
        var e = Assert.Throws<InvalidDataException>(() => ImageFile.Decode("hello world"u8.ToArray(), "notes.png"));
        Assert.StartsWith("notes.png: not an image: its first bytes (68656c6c6f20776f)", e.Message);
        e = Assert.Throws<InvalidDataException>(() => ImageFile.Decode([], "empty.jpg"));
        Assert.Equal("empty.jpg: not an image: the file is empty", e.Message);
        var jpeg = Encode(Sample(), new JpegEncoder());
        e = Assert.Throws<InvalidDataException>(() => ImageFile.Decode(jpeg[..40], "cut.jpg"));
        Assert.StartsWith("cut.jpg: not a valid JPEG image", e.Message);
    }

    [Fact]
    public void A_png_claiming_16384_squared_is_refused_before_decoding()
    {
        // 16384×16384 RGBA from a few bytes: before the limit, PNG's deflate ratio let a 1 MB file cost 1.3 GB
        byte[] png = PngTestFiles.FromRaw(PngTestFiles.Ihdr(16384, 16384, 8, 6), new byte[1]);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => ImageFile.Decode(png, "huge.png"));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
        Assert.Equal("huge.png: PNG image of 16384×16384 = 268,435,456 pixels is over the limit of 50,000,000 pixels (1,074 MB to decode); set DIFFUSHARP_MAX_PIXELS to raise it", e.Message);
    }

    [Fact]
    public void The_pixel_limit_applies_to_every_format_and_can_be_raised()
    {
        using var img = Sample(w: 100, h: 60);
        foreach (var encoder in new IImageEncoder[] { new JpegEncoder(), new BmpEncoder(), new GifEncoder(), new WebpEncoder(), new TiffEncoder() })
        {
            byte[] bytes = Encode(img, encoder);
            var e = Assert.Throws<InvalidDataException>(() => ImageFile.Decode(bytes, "big.img", maxPixels: 5999));
            Assert.Contains("big.img: ", e.Message);
            Assert.Contains("100×60 = 6,000 pixels is over the limit of 5,999 pixels", e.Message);
            Assert.Equal(100, ImageFile.Decode(bytes, "big.img", maxPixels: 6000).Width);
        }
        Assert.Throws<InvalidDataException>(() => ImageFile.Decode(Png.Encode(Image8.Blank(100, 60, 1)), "big.png", maxPixels: 5999));
    }

    [Fact]
    public void The_environment_variable_sets_the_default_limit()
    {
        string? old = Environment.GetEnvironmentVariable(ImageFile.PixelLimitVariable);
        try
        {
            Environment.SetEnvironmentVariable(ImageFile.PixelLimitVariable, "300000000");
            Assert.Equal(300_000_000, ImageFile.PixelLimit);
            Environment.SetEnvironmentVariable(ImageFile.PixelLimitVariable, "lots");
            Assert.Equal(ImageFile.DefaultPixelLimit, ImageFile.PixelLimit);
        }
        finally { Environment.SetEnvironmentVariable(ImageFile.PixelLimitVariable, old); }
    }

    [Fact]
    public void Writes_png_and_real_jpeg_and_refuses_other_extensions()
    {
        using var dir = new TempDir();
        var image = new Image8(16, 16, 3, [.. Enumerable.Range(0, 16 * 16 * 3).Select(i => (byte)(i % 200))]);
        string png = Path.Combine(dir.Path, "a.png"), jpg = Path.Combine(dir.Path, "a.JPG"), gif = Path.Combine(dir.Path, "a.gif");
        ImageFile.Write(png, image);
        Assert.Equal(image.Pixels, ImageFile.Read(png).Pixels);
        ImageFile.Write(jpg, image);
        byte[] bytes = File.ReadAllBytes(jpg);
        Assert.Equal(new byte[] { 0xFF, 0xD8, 0xFF }, bytes[..3]);               // a JPEG, not PNG bytes under a .jpg name
        Assert.Equal((16, 16), (ImageFile.Read(jpg).Width, ImageFile.Read(jpg).Height));
        var e = Assert.Throws<ArgumentException>(() => ImageFile.Write(gif, image));
        Assert.Contains("a.gif: cannot write '.gif' images; use .png or .jpg", e.Message);
        Assert.False(File.Exists(gif));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }
}

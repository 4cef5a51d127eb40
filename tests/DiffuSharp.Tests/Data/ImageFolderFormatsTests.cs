// An image folder of mixed formats (JPEG, BMP, WebP, TIFF, GIF, PNG) loads, and its report says what it found, what
// it converted to and which files it skipped; `train --data folder:` prints that report.
using DiffuSharp.Cli;
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.Models;
using DiffuSharp.Tests.Imaging;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using Xunit;

namespace DiffuSharp.Tests.Data;

public sealed class ImageFolderFormatsTests
{
    static void Make(string dir)
    {
        using var colour = ImageFileTests.Sample(w: 32, h: 32);
        File.WriteAllBytes(Path.Combine(dir, "a.jpg"), ImageFileTests.Encode(colour, new JpegEncoder()));
        File.WriteAllBytes(Path.Combine(dir, "b.bmp"), ImageFileTests.Encode(colour, new BmpEncoder()));
        File.WriteAllBytes(Path.Combine(dir, "c.gif"), ImageFileTests.Encode(colour, new GifEncoder()));
        File.WriteAllBytes(Path.Combine(dir, "d.tiff"), ImageFileTests.Encode(colour, new TiffEncoder()));
        using var alpha = ImageFileTests.Sample(alpha: true, w: 48, h: 32);
        File.WriteAllBytes(Path.Combine(dir, "e.webp"), ImageFileTests.Encode(alpha, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }));
        Png.Write(Path.Combine(dir, "f.png"), Image8.Blank(28, 28, 1));
        File.WriteAllText(Path.Combine(dir, "labels.csv"), "a,1");
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "x");
    }

    [Fact]
    public void Every_format_loads_and_the_report_says_what_was_converted_and_skipped()
    {
        using var dir = new TempDir();
        Make(dir.Path);
        var ds = ImageFolder.Load(dir.Path, 28, 1, out var report);
        Assert.Equal(6, ds.Count);
        Assert.Equal(["labels.csv", "notes.txt"], report.Skipped);
        var lines = report.Lines().ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Equal($"{dir.Path}: 6 images: 4 of 32×32 RGB, 1 of 28×28 gray, 1 of 48×32 RGBA → 28×28 gray (short side scaled to 28, centre-cropped; colour to gray (BT.601 luma); alpha composited over white)", lines[0]);
        Assert.Equal("skipped 2 files that are not .png/.jpg/.jpeg/.bmp/.gif/.webp/.tif/.tiff: labels.csv, notes.txt", lines[1]);
    }

    [Fact]
    public void A_folder_already_at_the_model_size_is_unchanged()
    {
        using var dir = new TempDir();
        Png.Write(Path.Combine(dir.Path, "x.png"), Image8.Blank(8, 8, 3));
        ImageFolder.Load(dir.Path, 8, 3, out var report);
        Assert.Equal([$"{dir.Path}: 1 image: 1 of 8×8 RGB → 8×8 RGB, unchanged"], report.Lines());
    }

    [Fact]
    public void An_image_over_the_pixel_limit_is_named()
    {
        using var dir = new TempDir();
        Png.Write(Path.Combine(dir.Path, "big.png"), Image8.Blank(100, 100, 1));
        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(dir.Path, 8, 1, out _, maxPixels: 9999));
        Assert.Contains("big.png: PNG image of 100×100 = 10,000 pixels is over the limit", e.Message);
    }

    [Fact]
    public void Train_prints_the_folder_report()
    {
        using var dir = new TempDir();
        Make(dir.Path);
        var log = new StringWriter();
        var model = Presets.Get("tiny").Model;
        var ds = TrainCommand.LoadData("folder:" + dir.Path, model, log: log);
        Assert.Equal((6, model.InChannels, model.ImageSize), (ds.Count, ds.Channels, ds.Height));
        string text = log.ToString();
        Assert.Contains("6 images: 4 of 32×32 RGB", text);
        Assert.Contains($"→ {model.ImageSize}×{model.ImageSize}", text);
        Assert.Contains("skipped 2 files", text);
    }
}

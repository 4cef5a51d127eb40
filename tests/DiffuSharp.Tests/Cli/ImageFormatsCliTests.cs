// The commands take the images people have and write the format the name asks for: `sample --out x.jpg` is a real
// JPEG, `invert --image` reads a JPEG, an unknown output extension is refused before any work, and an input over the
// pixel limit is one error line naming the file and its size.
using System.Diagnostics;
using DiffuSharp.Imaging;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Tests.Training;
using SixLabors.ImageSharp.Formats.Jpeg;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class ImageFormatsCliTests
{
    static (int Code, string Stdout, string Stderr) Cli(params string[] args) => TrainSampleEndToEndTests.Cli(args);

    [Fact]
    public void Sample_out_jpg_writes_a_jpeg()
    {
        string dir = TrainingFixtures.TempFolder("sample-jpg");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir), jpg = Path.Combine(dir, "grid.jpg");
            var (code, _, stderr) = Cli("sample", "--model", model, "--n", "4", "--steps", "2", "--out", jpg);
            Assert.True(code == 0, stderr);
            byte[] bytes = File.ReadAllBytes(jpg);
            Assert.Equal(new byte[] { 0xFF, 0xD8, 0xFF }, bytes[..3]);
            var image = ImageFile.Read(jpg);
            Assert.Equal((22, 22, 1), (image.Width, image.Height, image.Channels));     // 2×2 grid of 8×8 with 2-pixel padding, gray
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Invert_reads_a_jpeg_and_an_unknown_out_extension_is_refused_first()
    {
        string dir = TrainingFixtures.TempFolder("invert-jpg");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir), jpg = Path.Combine(dir, "in.jpg");
            using (var img = ImageFileTests.Sample(w: 12, h: 8))
                File.WriteAllBytes(jpg, ImageFileTests.Encode(img, new JpegEncoder()));
            var (code, stdout, stderr) = Cli("invert", "--model", model, "--image", jpg, "--steps", "2", "--out", Path.Combine(dir, "inv.jpg"));
            Assert.True(code == 0, stderr);
            Assert.Equal(0xFF, File.ReadAllBytes(Path.Combine(dir, "inv.jpg"))[0]);

            var clock = Stopwatch.StartNew();
            (code, _, stderr) = Cli("invert", "--model", model, "--image", jpg, "--out", Path.Combine(dir, "inv.bmp"));
            Assert.Equal(2, code);
            Assert.Contains("must end in .png, .jpg or .jpeg", stderr);
            Assert.False(File.Exists(Path.Combine(dir, "inv.bmp")));
            (code, _, stderr) = Cli("interpolate", "--model", model, "--seeds", "1", "2", "--out", Path.Combine(dir, "s.webp"));
            Assert.Equal(2, code);
            Assert.Contains("must end in .png, .jpg or .jpeg", stderr);
            Assert.True(clock.Elapsed.TotalSeconds < 10);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void An_image_over_the_pixel_limit_is_one_line_naming_it()
    {
        string dir = TrainingFixtures.TempFolder("invert-huge");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir), huge = Path.Combine(dir, "huge.png");
            File.WriteAllBytes(huge, PngTestFiles.FromRaw(PngTestFiles.Ihdr(16384, 16384, 8, 2), new byte[1]));
            var (code, _, stderr) = Cli("invert", "--model", model, "--image", huge, "--out", Path.Combine(dir, "o.png"));
            Assert.Equal(1, code);
            string line = Assert.Single(stderr.TrimEnd().Split('\n'));
            Assert.Equal($"error: {huge}: PNG image of 16384×16384 = 268,435,456 pixels is over the limit of 50,000,000 pixels (1,074 MB to decode); set DIFFUSHARP_MAX_PIXELS to raise it", line);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

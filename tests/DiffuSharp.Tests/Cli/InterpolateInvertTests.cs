// interpolate and invert end to end on a tiny random model: the strips they write have the expected layout, the
// λ = 0 and λ = 1 images of a seed interpolation are the end samples themselves, and DDIM inversion reports its
// error in the units it names and reconstructs deterministically.
using System.Globalization;
using System.Text.RegularExpressions;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class InterpolateInvertTests
{
    static (int Code, string Stdout, string Stderr) Cli(params string[] args) => TrainSampleEndToEndTests.Cli(args);

    static Image8 Tile(Image8 strip, int index, int size)
    {
        var px = new byte[size * size];
        int x0 = 2 + index * (size + 2);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) px[y * size + x] = strip.Pixels[(2 + y) * strip.Width + x0 + x];
        return new Image8(size, size, 1, px);
    }

    [Fact]
    public void Interpolate_images_writes_a_strip_with_both_end_images()
    {
        string dir = TrainingFixtures.TempFolder("interp");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir);
            string a = CliModelFixture.PngFile(dir, "a.png"), b = CliModelFixture.PngFile(dir, "b.png", phase: 2);
            string outPath = Path.Combine(dir, "strip.png");
            var (code, stdout, stderr) = Cli("interpolate", "--model", model, "--images", a, b, "--t", "20", "--lambdas", "0,0.5,1", "--out", outPath);
            Assert.True(code == 0, stderr);
            Assert.Contains("t = 20", stdout);
            var strip = Png.Read(outPath);
            Assert.Equal((5 * 10 + 2, 12), (strip.Width, strip.Height));
            Assert.Equal(Png.Read(a).Pixels, Tile(strip, 0, 8).Pixels);
            Assert.Equal(Png.Read(b).Pixels, Tile(strip, 4, 8).Pixels);
            Assert.NotEqual(Tile(strip, 1, 8).Pixels, Tile(strip, 3, 8).Pixels);

            // DDIM inversion to t, spherical mix, DDIM back in 10 steps; a 16×16 RGB input is converted and scaled.
            string rgb = CliModelFixture.PngFile(dir, "rgb.png", size: 16, channels: 3);
            (code, stdout, stderr) = Cli("interpolate", "--model", model, "--images", rgb, b, "--t", "45", "--steps", "10", "--encode", "ddim",
                "--lambdas", "0.3", "--out", outPath);
            Assert.True(code == 0, stderr);
            Assert.Contains("scaled", stdout);
            Assert.Contains("slerp", stdout);
            Assert.Equal(3 * 10 + 2, Png.Read(outPath).Width);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Interpolate_seeds_ends_are_the_lambda_zero_and_one_images()
    {
        string dir = TrainingFixtures.TempFolder("interp-seeds");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir, classCond: true);
            string outPath = Path.Combine(dir, "strip.png");
            var (code, _, stderr) = Cli("interpolate", "--model", model, "--seeds", "1", "2", "--t", "30", "--steps", "10", "--mix", "lerp",
                "--lambdas", "0,0.5,1", "--class", "2", "--out", outPath);
            Assert.True(code == 0, stderr);
            var strip = Png.Read(outPath);
            Assert.Equal(Tile(strip, 0, 8).Pixels, Tile(strip, 1, 8).Pixels);
            Assert.Equal(Tile(strip, 4, 8).Pixels, Tile(strip, 3, 8).Pixels);
            Assert.NotEqual(Tile(strip, 0, 8).Pixels, Tile(strip, 4, 8).Pixels);
            // Deterministic: the same command gives the same strip.
            string again = Path.Combine(dir, "again.png");
            Assert.Equal(0, Cli("interpolate", "--model", model, "--seeds", "1", "2", "--t", "30", "--steps", "10", "--mix", "lerp",
                "--lambdas", "0,0.5,1", "--class", "2", "--out", again).Code);
            Assert.Equal(strip.Pixels, Png.Read(again).Pixels);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Invert_prints_the_error_and_writes_original_latent_and_reconstruction()
    {
        string dir = TrainingFixtures.TempFolder("invert");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir);
            string image = CliModelFixture.PngFile(dir, "x.png");
            string outPath = Path.Combine(dir, "inv.png"), latent = Path.Combine(dir, "xT.npy");
            var (code, stdout, stderr) = Cli("invert", "--model", model, "--image", image, "--steps", "10", "--out", outPath, "--save-latent", latent);
            Assert.True(code == 0, stderr);
            var m = Regex.Match(stdout, @"MSE ([0-9.eE+-]+), PSNR ([0-9.]+|∞) dB on \[-1, 1\]");
            Assert.True(m.Success, stdout);
            Assert.Contains("8-bit pixels", stdout);
            var strip = Png.Read(outPath);
            Assert.Equal((3 * 10 + 2, 12), (strip.Width, strip.Height));
            Assert.Equal(Png.Read(image).Pixels, Tile(strip, 0, 8).Pixels);

            // The printed MSE is the one of the strip's reconstruction, to the rounding of 8-bit pixels.
            var original = ImageGrid.ToFloat(Png.Read(image), 1);
            var recon = ImageGrid.ToFloat(Tile(strip, 2, 8), 1);
            double mse = original.Zip(recon, (p, q) => (double)(p - q) * (p - q)).Average();
            double printed = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            Assert.InRange(printed, mse * 0.5 - 1e-4, mse * 1.5 + 1e-4);

            // The saved latent, sampled with DDIM in the same 10 steps, gives back the reconstruction.
            var (shape, _) = Npy.ReadFloat32(latent);
            Assert.Equal([1, 1, 8, 8], shape);
            string grid = Path.Combine(dir, "grid.png");
            Assert.Equal(0, Cli("sample", "--model", model, "--noise", latent, "--steps", "10", "--out", grid).Code);
            Assert.Equal(Tile(strip, 2, 8).Pixels, Tile(Png.Read(grid), 0, 8).Pixels);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Reconstruction_errors_are_in_the_units_they_name()
    {
        float[] a = [-1f, 0f, 1f, 0.5f], b = [-1f, 0.1f, 1f, 0.5f];
        var (mse, psnr, mse8, psnr8) = DiffuSharp.Cli.InvertCommand.Errors(a, b);
        Assert.Equal(0.01 / 4, mse, 9);
        Assert.Equal(10 * Math.Log10(4 / (0.01 / 4)), psnr, 6);
        double d8 = ImageGrid.ToByte(0.1f) - ImageGrid.ToByte(0f);
        Assert.Equal(d8 * d8 / 4, mse8, 9);
        Assert.Equal(10 * Math.Log10(255.0 * 255 / mse8), psnr8, 6);
    }
}

// End to end through the command line: train a tiny model for a few steps on 64 real Fashion-MNIST images (a folder
// of synthetic PNGs when the data set is not installed), stop, resume, then sample with DDIM in 5 steps and check
// the PNG grid, the .npy and the trajectory strip that come out. In the "Parallelism" collection: it compares the
// bits of two sampling runs, which the kernel-path switches other tests flip would change between them.
using DiffuSharp.Cli;
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class TrainSampleEndToEndTests
{
    [Fact]
    public void Train_resume_and_sample_through_the_cli()
    {
        string dir = TrainingFixtures.TempFolder("e2e");
        try
        {
            string data = File.Exists(Path.Combine(FashionMnist.DefaultFolder, "train-images-idx3-ubyte.gz")) ? "fashion-mnist" : "folder:" + WritePngs(dir);
            string run = Path.Combine(dir, "run");
            string[] common = ["--preset", "tiny", "--data", data, "--max_images", "64", "--batch_size", "2", "--num_channels", "32",
                               "--lr", "1e-3", "--ema_rate", "0.9", "--log_interval", "1", "--out", run];
            var (code, stdout, stderr) = Cli([.. new[] { "train", "--steps", "2", "--save_interval", "1" }, .. common]);
            Assert.True(code == 0, stderr);
            var logLines = File.ReadAllLines(Path.Combine(run, Trainer.LogFile));
            Assert.Equal(2, logLines.Length);
            Assert.Contains("\"loss_q", logLines[0]);
            Assert.Contains("\"samples_per_sec\"", logLines[1]);

            (code, _, stderr) = Cli(["train", "--resume", "--steps", "3", "--out", run]);
            Assert.True(code == 0, stderr);
            Assert.Contains("\"step\": 3", File.ReadAllText(Path.Combine(run, "checkpoint", "trainer.json")));
            var config = ModelFolder.LoadConfig(Path.Combine(run, "model"));
            Assert.Equal(28, config.ImageSize);

            string grid = Path.Combine(dir, "grid.png"), npy = Path.Combine(dir, "s.npy"), strip = Path.Combine(dir, "strip.png");
            (code, _, stderr) = Cli(["sample", "--model", Path.Combine(run, "model"), "--n", "4", "--batch", "4", "--steps", "5",
                                     "--out", grid, "--save-npy", npy, "--trajectory", strip, "--seed", "3"]);
            Assert.True(code == 0, stderr);
            var image = Png.Read(grid);
            Assert.Equal((2 * (28 + 2) + 2, 2 * (28 + 2) + 2), (image.Width, image.Height));
            var (shape, values) = Npy.ReadFloat32(npy);
            Assert.Equal([4, 1, 28, 28], shape);
            Assert.All(values, v => Assert.InRange(v, -1f, 1f));
            Assert.Equal(5 * (28 + 2) + 2, Png.Read(strip).Width);

            // DDIM with eta 0 is a pure function of model and noise: the saved samples' noise reproduces them.
            string noise = Path.Combine(dir, "noise.npy"), again = Path.Combine(dir, "again.npy");
            var rng = new Rng(9);
            var z = new float[3 * 28 * 28];
            rng.FillNormal(z);
            Npy.WriteFloat32(noise, [3, 1, 28, 28], z);
            Assert.Equal(0, Cli(["sample", "--model", Path.Combine(run, "model"), "--noise", noise, "--steps", "3", "--out", grid, "--save-npy", npy]).Code);
            Assert.Equal(0, Cli(["sample", "--model", Path.Combine(run, "model"), "--noise", noise, "--steps", "3", "--batch", "2", "--out", grid, "--save-npy", again]).Code);
            Assert.Equal(Npy.ReadFloat32(npy).Data, Npy.ReadFloat32(again).Data);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static string WritePngs(string dir)
    {
        string folder = Path.Combine(dir, "pngs");
        Directory.CreateDirectory(folder);
        var rng = new Rng(5);
        for (int i = 0; i < 64; i++)
        {
            var pixels = new byte[28 * 28];
            for (int p = 0; p < pixels.Length; p++) pixels[p] = (byte)rng.NextInt(256);
            Png.Write(Path.Combine(folder, $"{i:D3}.png"), new Image8(28, 28, 1, pixels));
        }
        return folder;
    }

    internal static (int Code, string Stdout, string Stderr) Cli(string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>The command fails with exactly one line on stderr, "error: ..." containing <paramref name="expected"/>, and no stack trace.</summary>
    internal static void AssertOneLineError(string[] args, string expected)
    {
        var (code, _, stderr) = Cli(args);
        Assert.NotEqual(0, code);
        var lines = stderr.TrimEnd().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", stderr);
    }
}

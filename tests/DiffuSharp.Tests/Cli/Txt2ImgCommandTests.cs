// diffusharp txt2img on the tiny_sd pipeline folder, end to end: with the recorded latents of diffusers' sd_txt2img
// run, --sampler dpm++2m (from_config of the folder's PNDM config, as the recording) gives diffusers' image in the
// .npy and the PNG, and the PNG's tEXt "parameters" holds sd-webui's text. Bad input is one error line.
using System.Text;
using DiffuSharp.Cli;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public class Txt2ImgCommandTests
{
    static readonly string Dir = Path.Combine(TestPaths.Diffusers, "pipelines");
    static readonly string TinySd = Path.Combine(Dir, "tiny_sd");

    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["txt2img", .. args], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Txt2img_reproduces_diffusers_and_writes_its_parameters()
    {
        using var dir = new TempDir();
        var run = SafeTensorsFile.Open(Path.Combine(Dir, "sd_txt2img.safetensors"));
        string latents = Path.Combine(dir.Path, "latents.npy"), npy = Path.Combine(dir.Path, "out.npy"), png = Path.Combine(dir.Path, "out.png");
        Npy.WriteFloat32(latents, [1, 4, 8, 8], run.ReadFloat32("input.latents"));
        var (code, _, err) = Run("--model", TinySd, "--prompt", "a photo of a cat", "--negative", "blurry", "--guidance", "7.5",
            "--steps", "10", "--sampler", "dpm++2m", "--width", "64", "--height", "64", "--seed", "1",
            "--latents", latents, "--save-npy", npy, "--out", png);
        Assert.True(code == 0, err);

        // the .npy: (1, 3, 64, 64) in [-1, 1] against diffusers' (1, 64, 64, 3) in [0, 1]
        var (shape, ours) = Npy.ReadFloat32(npy);
        Assert.Equal([1, 3, 64, 64], shape);
        var reference = run.ReadFloat64("output.image");
        double num = 0, den = 0;
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int c = 0; c < 3; c++)
                {
                    double r = reference[(y * 64 + x) * 3 + c] * 2 - 1, o = ours[(c * 64 + y) * 64 + x];
                    num += (o - r) * (o - r);
                    den += r * r;
                }
        Assert.True(Math.Sqrt(num / den) < 1e-4, $"image relative L2 {Math.Sqrt(num / den):E2}");

        // the PNG: diffusers' uint8 pixels within one level, and the parameters chunk
        var u8 = run.ReadInt64("output.image_u8");
        var image = Png.Read(png);
        Assert.Equal((64, 64, 3), (image.Width, image.Height, image.Channels));
        Assert.True(u8.Select((v, i) => Math.Abs(v - image.Pixels[i])).Max() <= 1);
        var text = PngTestFiles.Chunks(File.ReadAllBytes(png)).Single(c => c.Type == "tEXt").Data;
        Assert.Equal("parameters\0a photo of a cat\nNegative prompt: blurry\nSteps: 10, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 1, Size: 64x64, Model: tiny_sd",
            Encoding.Latin1.GetString(text));
    }

    [Fact]
    public void Bad_input_is_one_error_line()
    {
        using var dir = new TempDir();
        string png = Path.Combine(dir.Path, "out.png");
        void Fails(string expected, params string[] args)
        {
            var (code, _, err) = Run(args);
            Assert.NotEqual(0, code);
            var errors = err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
            Assert.Single(errors);
            Assert.Contains(expected, errors[0]);
            Assert.False(File.Exists(png));
        }
        Fails("multiples of 8", "--model", TinySd, "--prompt", "p", "--width", "60", "--height", "64", "--out", png);
        string ckpt = Path.Combine(dir.Path, "model.ckpt");
        File.WriteAllBytes(ckpt, [0x80, 0x02]);
        Fails("pickle", "--model", ckpt, "--prompt", "p", "--out", png);

        // a pipeline folder without its VAE: the error names the missing folder
        string copy = Path.Combine(dir.Path, "tiny_sd");
        foreach (var f in Directory.GetFiles(TinySd, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(copy, Path.GetRelativePath(TinySd, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        Directory.Delete(Path.Combine(copy, "vae"), recursive: true);
        Fails(Path.Combine(copy, "vae"), "--model", copy, "--prompt", "p", "--steps", "1", "--out", png);
    }
}

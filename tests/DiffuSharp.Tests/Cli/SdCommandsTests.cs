// txt2img with ControlNets, img2img and inpaint from the command line, end to end on the tiny pipeline folders:
// - txt2img with one ControlNet (the folder's own), with two (--controlnet twice, two scales, DPM++ 2M Karras) and with
//   one beside a plain folder stopping at 70% of the steps (--control-end 0.7, DDIM), with the recorded latents, gives
//   diffusers' StableDiffusionControlNetPipeline image (sd_controlnet, sd_multicontrolnet, sd_controlnet_separate)
//   within 1e-4 relative L2 and its uint8 pixels within one level;
// - img2img and inpaint (4- and 9-channel UNets, with and without a ControlNet) give the library call's image bit for
//   bit with the same seed (the library calls replay diffusers' recorded runs in Pipelines/StableDiffusionPipelineTests;
//   diffusers draws the VAE posterior from its own generator, which a command line cannot hand over);
// - a ControlNet at scale 0 changes nothing, at 1 it changes the image; --latents is the noise img2img mixes in;
// - every PNG carries sd-webui's parameters (Denoising strength, ControlNet entries).
using System.Text;
using DiffuSharp.Cli;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public class SdCommandsTests
{
    internal static readonly string Dir = Path.Combine(TestPaths.Diffusers, "pipelines");
    internal static readonly string TinySd = Path.Combine(Dir, "tiny_sd");
    internal static readonly string TinyControl = Path.Combine(Dir, "tiny_sd_controlnet");
    internal static readonly string TinyMulti = Path.Combine(Dir, "tiny_sd_multicontrolnet");
    internal static readonly string TinyInpaint = Path.Combine(Dir, "tiny_sd_inpaint");

    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A recorded uint8 image (H, W, 3) or mask (H, W) written as a PNG.</summary>
    internal static string WritePng(SafeTensorsFile run, string name, string path)
    {
        var shape = run.Info(name).Shape;
        int channels = shape.Length == 3 ? (int)shape[2] : 1;
        Png.Write(path, new Image8((int)shape[1], (int)shape[0], channels, [.. run.ReadInt64(name).Select(v => (byte)v)]));
        return path;
    }

    internal static string Parameters(string png)
        => Encoding.Latin1.GetString(PngTestFiles.Chunks(File.ReadAllBytes(png)).Single(c => c.Type == "tEXt").Data)["parameters\0".Length..];

    /// <summary>‖ours − diffusers‖ / ‖diffusers‖ for ours (1, 3, H, W) in [-1, 1] against diffusers' (1, H, W, 3) in [0, 1].</summary>
    internal static double RelToDiffusers(float[] ours, double[] reference, int h, int w)
    {
        double num = 0, den = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                {
                    double r = reference[(y * w + x) * 3 + c] * 2 - 1, o = ours[(c * h + y) * w + x];
                    num += (o - r) * (o - r);
                    den += r * r;
                }
        return Math.Sqrt(num / den);
    }

    [Theory]
    [InlineData("sd_controlnet")]
    [InlineData("sd_multicontrolnet")]
    [InlineData("sd_controlnet_separate")]
    public void Txt2img_with_controlnets_reproduces_diffusers(string runName)
    {
        using var dir = new TempDir();
        var run = SafeTensorsFile.Open(Path.Combine(Dir, runName + ".safetensors"));
        string latents = Path.Combine(dir.Path, "latents.npy"), npy = Path.Combine(dir.Path, "out.npy"), png = Path.Combine(dir.Path, "out.png");
        Npy.WriteFloat32(latents, [1, 4, 8, 8], run.ReadFloat32("input.latents"));
        string[] args = ["txt2img", "--prompt", "a photo of a house", "--negative", "blurry", "--guidance", "7.5", "--steps", "10",
            "--width", "64", "--height", "64", "--latents", latents, "--save-npy", npy, "--out", png];
        string expectedControl;
        if (runName == "sd_controlnet")
        {
            // the folder's own ControlNet, the folder's PNDM scheduler
            args = [.. args, "--model", TinyControl, "--control-image", WritePng(run, "input.control_image", Path.Combine(dir.Path, "c.png")), "--control-scale", "0.8"];
            expectedControl = "ControlNet 0: \"Module: none, Model: tiny_sd_controlnet/controlnet, Weight: 0.8, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced\"";
        }
        else if (runName == "sd_controlnet_separate")
        {
            // a ControlNet folder of its own beside a plain pipeline folder, stopped after 70% of the steps, DDIM
            args = [.. args, "--model", TinySd, "--sampler", "ddim", "--controlnet", Path.Combine(TinyMulti, "controlnet_1"),
                "--control-image", WritePng(run, "input.control_image", Path.Combine(dir.Path, "c.png")), "--control-end", "0.7"];
            expectedControl = "ControlNet 0: \"Module: none, Model: controlnet_1, Weight: 1, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 0.7, Pixel Perfect: False, Control Mode: Balanced\"";
        }
        else
        {
            args = [.. args, "--model", TinyMulti, "--sampler", "dpm++2m", "--karras",
                "--controlnet", Path.Combine(TinyMulti, "controlnet"), "--control-image", WritePng(run, "input.control_image_0", Path.Combine(dir.Path, "c0.png")),
                "--controlnet", Path.Combine(TinyMulti, "controlnet_1"), "--control-image", WritePng(run, "input.control_image_1", Path.Combine(dir.Path, "c1.png")),
                "--control-scale", "1", "--control-scale", "0.5"];
            expectedControl = "ControlNet 0: \"Module: none, Model: controlnet, Weight: 1, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced\", " +
                "ControlNet 1: \"Module: none, Model: controlnet_1, Weight: 0.5, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced\"";
        }
        var (code, _, err) = Run(args);
        Assert.True(code == 0, err);

        var (shape, ours) = Npy.ReadFloat32(npy);
        Assert.Equal([1, 3, 64, 64], shape);
        double rel = RelToDiffusers(ours, run.ReadFloat64("output.image"), 64, 64);
        Assert.True(rel < 1e-4, $"{runName}: image relative L2 {rel:E2}");
        var u8 = run.ReadInt64("output.image_u8");
        var image = Png.Read(png);
        Assert.True(u8.Select((v, i) => Math.Abs(v - image.Pixels[i])).Max() <= 1);
        string sampler = runName switch { "sd_controlnet" => "PLMS", "sd_controlnet_separate" => "DDIM", _ => "DPM++ 2M Karras" };
        string model = runName switch { "sd_controlnet" => "tiny_sd_controlnet", "sd_controlnet_separate" => "tiny_sd", _ => "tiny_sd_multicontrolnet" };
        Assert.Equal($"a photo of a house\nNegative prompt: blurry\nSteps: 10, Sampler: {sampler}, CFG scale: 7.5, Seed: 0, Size: 64x64, Model: {model}, {expectedControl}",
            Parameters(png));
    }

    [Fact]
    public void Img2img_is_the_library_call_and_writes_its_strength()
    {
        using var dir = new TempDir();
        var run = SafeTensorsFile.Open(Path.Combine(Dir, "sd_img2img.safetensors"));
        string init = WritePng(run, "input.init_image", Path.Combine(dir.Path, "init.png"));
        string npy = Path.Combine(dir.Path, "out.npy"), png = Path.Combine(dir.Path, "out.png");
        var (code, stdout, err) = Run("img2img", "--model", TinySd, "--image", init, "--strength", "0.6", "--prompt", "a watercolor painting of a cat",
            "--negative", "blurry", "--steps", "10", "--sampler", "ddim", "--seed", "202", "--n", "2", "--save-npy", npy, "--out", png);
        Assert.True(code == 0, err);
        Assert.Contains("10 steps of DDIM (6 model calls)", stdout);

        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(TinySd), "ddim");
        var image = Tensor.FromArray([.. run.ReadInt64("input.init_image").Select(v => v / 255f * 2f - 1f)], 1, 64, 64, 3).Permute(0, 3, 1, 2).Contiguous();
        var expected = pipe.Img2Img(new Img2ImgRequest("a watercolor painting of a cat", image, 0.6, "blurry", 7.5, 10, NumImages: 2), new Rng(202));
        var (shape, ours) = Npy.ReadFloat32(npy);
        Assert.Equal([2, 3, 64, 64], shape);
        Assert.Equal(Array.ConvertAll(expected.Image.ToArray(), v => v * 2f - 1f), ours);
        Assert.Equal("a watercolor painting of a cat\nNegative prompt: blurry\nSteps: 10, Sampler: DDIM, CFG scale: 7.5, Seed: 202, Size: 64x64, Model: tiny_sd, Denoising strength: 0.6",
            Parameters(png));
        var grid = Png.Read(png);
        Assert.Equal((64 * 2 + 2 * 3, 64 + 4), (grid.Width, grid.Height));            // two images side by side, 2-pixel padding

        // --latents is the noise add_noise mixes in: the recorded noise with the posterior draw of another seed changes
        // only the noise's share of the result
        string noise = Path.Combine(dir.Path, "noise.npy");
        Npy.WriteFloat32(noise, [1, 4, 8, 8], run.ReadFloat32("rng.01"));
        (code, _, err) = Run("img2img", "--model", TinySd, "--image", init, "--strength", "0.6", "--prompt", "a watercolor painting of a cat",
            "--negative", "blurry", "--steps", "10", "--sampler", "ddim", "--seed", "5", "--latents", noise, "--save-npy", npy, "--out", png);
        Assert.True(code == 0, err);
        var withNoise = pipe.Img2Img(new Img2ImgRequest("a watercolor painting of a cat", image, 0.6, "blurry", 7.5, 10,
            Noise: Tensor.FromArray(run.ReadFloat32("rng.01"), 1, 4, 8, 8)), new Rng(5));
        Assert.Equal(Array.ConvertAll(withNoise.Image.ToArray(), v => v * 2f - 1f), Npy.ReadFloat32(npy).Data);
    }

    [Theory]
    [InlineData("sd_inpaint_legacy_4ch", false)]
    [InlineData("sd_inpaint_9ch", false)]
    [InlineData("sd_inpaint_9ch", true)]
    public void Inpaint_is_the_library_call(string runName, bool withControlNet)
    {
        using var dir = new TempDir();
        var run = SafeTensorsFile.Open(Path.Combine(Dir, runName + ".safetensors"));
        string folder = runName.EndsWith("9ch") ? TinyInpaint : TinySd;
        string init = WritePng(run, "input.init_image", Path.Combine(dir.Path, "init.png"));
        string mask = WritePng(run, "input.mask_image", Path.Combine(dir.Path, "mask.png"));
        string control = WritePng(SafeTensorsFile.Open(Path.Combine(Dir, "sd_controlnet.safetensors")), "input.control_image", Path.Combine(dir.Path, "c.png"));
        string npy = Path.Combine(dir.Path, "out.npy"), png = Path.Combine(dir.Path, "out.png");
        string[] args = ["inpaint", "--model", folder, "--image", init, "--mask", mask, "--prompt", "a photo of a dog sitting", "--negative", "blurry",
            "--steps", "4", "--sampler", "euler_a", "--seed", "9", "--save-npy", npy, "--out", png];
        if (withControlNet) args = [.. args, "--controlnet", Path.Combine(TinyControl, "controlnet"), "--control-image", control, "--control-scale", "0.7"];
        var (code, _, err) = Run(args);
        Assert.True(code == 0, err);

        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(folder), "euler_a");
        var image = Tensor.FromArray([.. run.ReadInt64("input.init_image").Select(v => v / 255f * 2f - 1f)], 1, 64, 64, 3).Permute(0, 3, 1, 2).Contiguous();
        var maskT = Tensor.FromArray([.. run.ReadInt64("input.mask_image").Select(v => v / 255f)], 1, 1, 64, 64);
        IReadOnlyList<ControlNetInput>? nets = null;
        if (withControlNet)
        {
            var c = Png.Read(control);
            var cImage = Tensor.FromArray([.. c.Pixels.Select(v => v / 255f)], 1, 64, 64, 3).Permute(0, 3, 1, 2).Contiguous();
            nets = [new ControlNetInput(ComponentLoader.LoadControlNet(Path.Combine(TinyControl, "controlnet")), cImage, 0.7)];
        }
        var expected = pipe.Inpaint(new InpaintRequest("a photo of a dog sitting", image, maskT, 1.0, "blurry", 7.5, 4, Control: nets), new Rng(9));
        Assert.Equal(Array.ConvertAll(expected.Image.ToArray(), v => v * 2f - 1f), Npy.ReadFloat32(npy).Data);
        string controlText = withControlNet ? ", ControlNet 0: \"Module: none, Model: controlnet, Weight: 0.7, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced\"" : "";
        Assert.Equal($"a photo of a dog sitting\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, CFG scale: 7.5, Seed: 9, Size: 64x64, Model: {Path.GetFileName(folder)}, Denoising strength: 1{controlText}",
            Parameters(png));
        if (withControlNet)                                                          // the net steers the run
        {
            var plain = pipe.Inpaint(new InpaintRequest("a photo of a dog sitting", image, maskT, 1.0, "blurry", 7.5, 4), new Rng(9));
            Assert.NotEqual(plain.Image.ToArray(), expected.Image.ToArray());
        }
    }

    [Fact]
    public void A_controlnet_at_scale_0_changes_nothing_and_at_1_changes_the_image()
    {
        using var dir = new TempDir();
        var run = SafeTensorsFile.Open(Path.Combine(Dir, "sd_img2img.safetensors"));
        string init = WritePng(run, "input.init_image", Path.Combine(dir.Path, "init.png"));
        string control = WritePng(SafeTensorsFile.Open(Path.Combine(Dir, "sd_controlnet.safetensors")), "input.control_image", Path.Combine(dir.Path, "c.png"));
        float[] Img2img(params string[] extra)
        {
            string npy = Path.Combine(dir.Path, "out.npy");
            var (code, _, err) = Run(["img2img", "--model", TinyControl, "--image", init, "--strength", "0.8", "--prompt", "a house", "--steps", "5",
                "--sampler", "ddim", "--seed", "3", "--save-npy", npy, "--out", Path.Combine(dir.Path, "out.png"), .. extra]);
            Assert.True(code == 0, err);
            return Npy.ReadFloat32(npy).Data;
        }
        var none = Img2img();
        Assert.Equal(none, Img2img("--control-image", control, "--control-scale", "0"));
        Assert.NotEqual(none, Img2img("--control-image", control, "--control-scale", "1"));
    }
}

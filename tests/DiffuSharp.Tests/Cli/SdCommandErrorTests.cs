// Bad input to txt2img, img2img and inpaint: one "error:" line naming the problem and the file or flag, a non-zero exit
// code, and no output file (nor .npy, nor preview). A prompt over 77 tokens is not an error: it is cut, with diffusers'
// warning, and the run goes on.
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Tests.Imaging;
using Xunit;
using static DiffuSharp.Tests.Cli.SdCommandsTests;

namespace DiffuSharp.Tests.Cli;

public class SdCommandErrorTests
{
    sealed class Env : IDisposable
    {
        readonly TempDir _dir = new();
        public string Path => _dir.Path;
        public string Out => System.IO.Path.Combine(Path, "out.png");
        public string Npy => System.IO.Path.Combine(Path, "out.npy");
        public string Preview => System.IO.Path.Combine(Path, "preview.png");
        public string Image64 { get; }
        public string Mask64 { get; }

        public Env()
        {
            var run = SafeTensorsFile.Open(System.IO.Path.Combine(Dir, "sd_inpaint_9ch.safetensors"));
            Image64 = WritePng(run, "input.init_image", System.IO.Path.Combine(Path, "image.png"));
            Mask64 = WritePng(run, "input.mask_image", System.IO.Path.Combine(Path, "mask.png"));
        }

        public string Png(string name, int width, int height, int channels = 3)
        {
            string path = System.IO.Path.Combine(Path, name);
            DiffuSharp.Imaging.Png.Write(path, Image8.Blank(width, height, channels));
            return path;
        }

        /// <summary>A copy of a pipeline folder, to damage.</summary>
        public string Copy(string folder)
        {
            string copy = System.IO.Path.Combine(Path, System.IO.Path.GetFileName(folder));
            foreach (var f in Directory.GetFiles(folder, "*", SearchOption.AllDirectories))
            {
                string to = System.IO.Path.Combine(copy, System.IO.Path.GetRelativePath(folder, f));
                Directory.CreateDirectory(System.IO.Path.GetDirectoryName(to)!);
                File.Copy(f, to);
            }
            return copy;
        }

        public void Fails(string expected, params string[] args)
        {
            var (code, _, err) = Run([.. args, "--out", Out, "--save-npy", Npy, "--preview", Preview]);
            Assert.True(code != 0, $"{string.Join(' ', args)} succeeded: {err}");
            var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var errors = lines.Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
            Assert.True(errors.Count == 1, err);
            Assert.Contains(expected, errors[0]);
            Assert.DoesNotContain(lines, l => l.Contains("   at ", StringComparison.Ordinal));   // no stack trace
            Assert.False(File.Exists(Out));
            Assert.False(File.Exists(Npy));
            Assert.False(File.Exists(Preview));
        }

        public void Dispose() => _dir.Dispose();
    }

    [Fact]
    public void Sizes_not_multiples_of_8_are_refused()
    {
        using var env = new Env();
        env.Fails("--width and --height must be multiples of 8", "txt2img", "--model", TinySd, "--prompt", "p", "--width", "64", "--height", "60");
        env.Fails("is 60x64; Stable Diffusion needs sides that are multiples of 8", "img2img", "--model", TinySd, "--prompt", "p", "--image", env.Png("odd.png", 60, 64));
        env.Fails("is 64x64 but --width/--height ask for 128x64", "img2img", "--model", TinySd, "--prompt", "p", "--image", env.Image64, "--width", "128");
    }

    [Fact]
    public void A_mask_or_control_image_of_the_wrong_size_is_refused()
    {
        using var env = new Env();
        env.Fails($"--mask {env.Path}/small.png is 32x32, the --image is 64x64", "inpaint", "--model", TinySd, "--prompt", "p", "--image", env.Image64, "--mask", env.Png("small.png", 32, 32, 1));
        string control = env.Png("control.png", 32, 64);
        env.Fails("is 32x64, the output is 64x64; the control image is not resized", "txt2img", "--model", TinyControl, "--prompt", "p", "--control-image", control);
        env.Fails("is 32x64, the output is 64x64", "inpaint", "--model", TinySd, "--prompt", "p", "--image", env.Image64, "--mask", env.Mask64,
            "--controlnet", Path.Combine(TinyControl, "controlnet"), "--control-image", control);
    }

    [Fact]
    public void ControlNet_options_that_do_not_pair_up_are_refused()
    {
        using var env = new Env();
        string c = env.Png("c.png", 64, 64);
        env.Fails("2 --controlnet need 2 --control-image", "txt2img", "--model", TinySd, "--prompt", "p",
            "--controlnet", Path.Combine(TinyMulti, "controlnet"), "--controlnet", Path.Combine(TinyMulti, "controlnet_1"), "--control-image", c);
        env.Fails("one --control-scale for all ControlNets or one each (1), got 2", "txt2img", "--model", TinyControl, "--prompt", "p",
            "--control-image", c, "--control-scale", "1", "--control-scale", "2");
        env.Fails("has no ControlNet: name one with --controlnet DIR", "txt2img", "--model", TinySd, "--prompt", "p", "--control-image", c);
        env.Fails("--controlnet folder not found", "txt2img", "--model", TinySd, "--prompt", "p", "--controlnet", Path.Combine(env.Path, "nope"), "--control-image", c);
        env.Fails("--control-start 0.5 and --control-end 0.5 must satisfy 0 ≤ start < end ≤ 1", "txt2img", "--model", TinyControl, "--prompt", "p",
            "--control-image", c, "--control-start", "0.5", "--control-end", "0.5");
        env.Fails("--control-end without --control-image", "txt2img", "--model", TinyControl, "--prompt", "p", "--control-end", "0.5");
        env.Fails("--control-scale expects a number, got 'x'", "txt2img", "--model", TinyControl, "--prompt", "p", "--control-image", c, "--control-scale", "x");
    }

    [Fact]
    public void Missing_inputs_and_components_are_named()
    {
        using var env = new Env();
        env.Fails("--mask is required", "inpaint", "--model", TinySd, "--prompt", "p", "--image", env.Image64);
        env.Fails("--image file not found", "img2img", "--model", TinySd, "--prompt", "p", "--image", Path.Combine(env.Path, "none.png"));
        string notPng = Path.Combine(env.Path, "image.jpg");
        File.WriteAllBytes(notPng, [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        env.Fails("image.jpg", "img2img", "--model", TinySd, "--prompt", "p", "--image", notPng);
        string ckpt = Path.Combine(env.Path, "sd.ckpt");
        File.WriteAllBytes(ckpt, [0x80, 0x02]);
        env.Fails("pickle", "img2img", "--model", ckpt, "--prompt", "p", "--image", env.Image64);
        env.Fails("pickle", "inpaint", "--model", ckpt, "--prompt", "p", "--image", env.Image64, "--mask", env.Mask64);

        string copy = env.Copy(TinySd);
        Directory.Delete(Path.Combine(copy, "unet"), recursive: true);
        env.Fails(Path.Combine(copy, "unet"), "inpaint", "--model", copy, "--prompt", "p", "--image", env.Image64, "--mask", env.Mask64, "--steps", "1");
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("reshaped")]
    public void A_missing_or_wrongly_shaped_tensor_is_named(string damage)
    {
        using var env = new Env();
        string copy = env.Copy(TinySd);
        string weights = Path.Combine(copy, "vae", "diffusion_pytorch_model.safetensors");
        var f = SafeTensorsFile.Open(weights);
        const string victim = "decoder.conv_out.weight";
        var tensors = f.Names.Where(n => damage == "reshaped" || n != victim).Select(n =>
        {
            var shape = Array.ConvertAll(f.Info(n).Shape, d => (int)d);
            var data = f.ReadFloat32(n);
            if (n == victim && damage == "reshaped") { shape = [shape[0], shape[1] * shape[2] * shape[3]]; }
            return (n, shape, data);
        }).ToList();
        File.Delete(weights);
        SafeTensorsWriter.Write(weights, tensors);
        env.Fails(victim, "img2img", "--model", copy, "--prompt", "p", "--image", env.Image64, "--steps", "1");
    }

    [Fact]
    public void A_strength_that_leaves_no_step_and_an_inpainting_unet_on_img2img_are_refused()
    {
        using var env = new Env();
        env.Fails("--strength 0.05 of 10 steps leaves no step to run", "img2img", "--model", TinySd, "--prompt", "p", "--image", env.Image64, "--strength", "0.05", "--steps", "10", "--sampler", "ddim");
        env.Fails("--strength must be at most 1", "img2img", "--model", TinySd, "--prompt", "p", "--image", env.Image64, "--strength", "1.5");
        env.Fails("use inpaint", "img2img", "--model", TinyInpaint, "--prompt", "p", "--image", env.Image64);
        env.Fails("--latents", "img2img", "--model", TinySd, "--prompt", "p", "--image", env.Image64, "--latents", Path.Combine(env.Path, "none.npy"));
        string wrong = Path.Combine(env.Path, "wrong.npy");
        Npy.WriteFloat32(wrong, [1, 4, 4, 8], new float[128]);
        env.Fails("has shape (1, 4, 4, 8), 1 image(s) of 64x64 need (1, 4, 8, 8)", "inpaint", "--model", TinySd, "--prompt", "p", "--image", env.Image64, "--mask", env.Mask64, "--latents", wrong);
        env.Fails("--preview-mode must be cheap or vae", "txt2img", "--model", TinySd, "--prompt", "p", "--preview-mode", "full");
    }

    [Fact]
    public void A_prompt_over_77_tokens_is_cut_with_diffusers_warning()
    {
        using var env = new Env();
        string prompt = string.Join(" ", Enumerable.Repeat("cat", 80)) + " dog";
        var (code, _, err) = Run("img2img", "--model", TinySd, "--prompt", prompt, "--image", env.Image64, "--steps", "2", "--strength", "0.5", "--out", env.Out);
        Assert.True(code == 0, err);
        Assert.Contains("warning: The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: ['cat cat cat cat cat dog']", err);
        Assert.True(File.Exists(env.Out));
    }
}

/// <summary>The ControlNet options repeat; they are taken out of the arguments before the parser, which sees the rest.</summary>
public class SdRepeatedOptionsTests
{
    [Fact]
    public void Repeated_options_are_taken_in_order_and_values_of_other_options_left_alone()
    {
        var specs = DiffuSharp.Cli.StableDiffusion.SdOptions.Specs(DiffuSharp.Cli.StableDiffusion.SdMode.Txt2Img);
        var (others, repeated) = DiffuSharp.Cli.StableDiffusion.SdOptions.TakeRepeated("txt2img",
            ["--controlnet", "a", "--prompt", "--controlnet", "--control-image=x.png", "--karras", "--controlnet=b", "--control-image", "y.png", "--out", "o.png"], specs);
        Assert.Equal(["--prompt", "--controlnet", "--karras", "--out", "o.png"], others);
        Assert.Equal(["a", "b"], repeated["controlnet"]);
        Assert.Equal(["x.png", "y.png"], repeated["control-image"]);
        Assert.Empty(repeated["control-scale"]);
        Assert.Throws<DiffuSharp.Cli.CliException>(() => DiffuSharp.Cli.StableDiffusion.SdOptions.TakeRepeated("txt2img", ["--control-scale"], specs));
    }
}

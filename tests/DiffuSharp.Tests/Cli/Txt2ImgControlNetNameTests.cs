// txt2img --controlnet NAME: a name resolves to the pipeline folder's controlnet-NAME/ (Pipelines/PipelineControlNets),
// and the run is diffusers' own: the sd_controlnet_separate recording (tiny_sd with tiny_sd_multicontrolnet's
// controlnet_1, DDIM, control_guidance_end 0.7) replayed with that net as controlnet-b/ beside a copy of tiny_sd. An
// unknown name is one error line listing the folder's ControlNets.
using DiffuSharp.IO;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Tests.Pipelines;
using Xunit;
using static DiffuSharp.Tests.Cli.SdCommandsTests;

namespace DiffuSharp.Tests.Cli;

public class Txt2ImgControlNetNameTests
{
    [Fact]
    public void A_name_is_the_pipeline_folders_controlnet_subfolder()
    {
        using var dir = new TempDir();
        string model = TwoControlNetPipeline.Make(dir.Path);
        var run = SafeTensorsFile.Open(Path.Combine(Dir, "sd_controlnet_separate.safetensors"));
        string latents = Path.Combine(dir.Path, "latents.npy"), npy = Path.Combine(dir.Path, "out.npy"), png = Path.Combine(dir.Path, "out.png");
        Npy.WriteFloat32(latents, [1, 4, 8, 8], run.ReadFloat32("input.latents"));
        var (code, _, err) = Run("txt2img", "--model", model, "--controlnet", "b", "--control-image", WritePng(run, "input.control_image", Path.Combine(dir.Path, "c.png")),
            "--control-end", "0.7", "--sampler", "ddim", "--prompt", "a photo of a house", "--negative", "blurry", "--guidance", "7.5", "--steps", "10",
            "--width", "64", "--height", "64", "--latents", latents, "--save-npy", npy, "--out", png);
        Assert.True(code == 0, err);
        var (_, ours) = Npy.ReadFloat32(npy);
        double rel = RelToDiffusers(ours, run.ReadFloat64("output.image"), 64, 64);
        Assert.True(rel < 1e-4, $"image relative L2 {rel:E2}");
        Assert.Contains("ControlNet 0: \"Module: none, Model: controlnet-b, Weight: 1,", Parameters(png));
    }

    [Fact]
    public void An_unknown_name_lists_the_folders_controlnets()
    {
        using var dir = new TempDir();
        string model = TwoControlNetPipeline.Make(dir.Path);
        string control = Path.Combine(dir.Path, "c.png"), png = Path.Combine(dir.Path, "out.png");
        DiffuSharp.Imaging.Png.Write(control, DiffuSharp.Imaging.Image8.Blank(64, 64, 3));
        var (code, _, err) = Run("txt2img", "--model", model, "--controlnet", "depth", "--control-image", control, "--prompt", "p", "--out", png);
        Assert.NotEqual(0, code);
        var errors = err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        Assert.Contains("--controlnet folder not found: depth", errors[0]);
        Assert.Contains("has no ControlNet of that name (its ControlNets: a, b)", errors[0]);
        Assert.False(File.Exists(png));
    }
}

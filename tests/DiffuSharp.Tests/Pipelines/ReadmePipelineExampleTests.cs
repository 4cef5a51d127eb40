// The README's C# example for txt2img ("Stable Diffusion: txt2img"), as written there (the folder path made
// absolute): it compiles, runs on the tiny pipeline folder, calls back every step and gives an image in [0, 1].
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using Xunit;

namespace DiffuSharp.Tests.Pipelines;

public class ReadmePipelineExampleTests
{
    [Fact]
    public void The_readme_txt2img_example_runs()
    {
        string tinySd = Path.Combine(TestPaths.Diffusers, "pipelines", "tiny_sd");
        int calls = 0;
        // --- as in README.md ---
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(tinySd), sampler: "dpm++2m");
        var result = pipe.Txt2Img(new Txt2ImgRequest("a photo of a cat", "blurry", GuidanceScale: 7.5, Steps: 20, Width: 64, Height: 64),
            new Rng(1), callback: (step, t, latents) => calls++);
        // ---
        Assert.Equal(20, calls);
        Assert.Equal([1, 3, 64, 64], result.Image.Shape);
        Assert.All(result.Image.ToArray(), v => Assert.True(v >= 0 && v <= 1));
    }
}

/// <summary>The README's C# example for img2img, inpaint, ControlNet, previews and tiling ("Stable Diffusion: img2img,
/// inpaint, ControlNet, …"), as written there, on the tiny folders (sizes made small).</summary>
public class ReadmeSdExamplesTests
{
    [Fact]
    public void The_readme_img2img_inpaint_controlnet_example_runs()
    {
        string dir = Path.Combine(TestPaths.Diffusers, "pipelines");
        string sdFolder = Path.Combine(dir, "tiny_sd"), cannyNet = Path.Combine(dir, "tiny_sd_controlnet", "controlnet");
        var image = Tensor.RandN([1, 3, 64, 64], new Rng(2)).Clamp(-1, 1);
        var mask = Tensor.FromArray([.. Enumerable.Range(0, 64 * 64).Select(i => i % 64 < 32 ? 1f : 0f)], 1, 1, 64, 64);
        var edges = Tensor.RandN([1, 3, 64, 64], new Rng(3)).Clamp(0, 1);
        var previews = new List<Tensor>();
        // --- as in README.md (sizes 64 instead of 512, 128×64 instead of 1024×768, fewer steps) ---
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(sdFolder));
        var init = pipe.Img2Img(new Img2ImgRequest("a watercolor painting of a cat", image, Strength: 0.6, Steps: 5), new Rng(1));
        var painted = pipe.Inpaint(new InpaintRequest("a dog sitting", image, mask, Steps: 5), new Rng(1));
        var net = ComponentLoader.LoadControlNet(cannyNet);
        var steered = pipe.Txt2Img(new Txt2ImgRequest("a house", Steps: 5, Width: 64, Height: 64, Control: [new ControlNetInput(net, edges, Scale: 0.8)]),
            new Rng(1), preview: (step, t, x0) => previews.Add(LatentPreview.CheapRgb(x0)));
        var large = pipe.WithVaeTiling(VaeTiling.For(pipe.Vae.Config)).Txt2Img(new Txt2ImgRequest("a city", Steps: 2, Width: 128, Height: 64), new Rng(1));
        // ---
        Assert.Equal([1, 3, 64, 64], init.Image.Shape);
        Assert.Equal([1, 3, 64, 64], painted.Image.Shape);
        Assert.Equal([1, 3, 64, 64], steered.Image.Shape);
        Assert.Equal(steered.Timesteps.Count, previews.Count);
        Assert.Equal([1, 3, 8, 8], previews[^1].Shape);
        Assert.Equal([1, 3, 64, 128], large.Image.Shape);
    }
}

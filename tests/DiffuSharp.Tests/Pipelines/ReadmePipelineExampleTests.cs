// The README's C# example for txt2img ("Stable Diffusion: txt2img"), as written there (the folder path made
// absolute): it compiles, runs on the tiny pipeline folder, calls back every step and gives an image in [0, 1].
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

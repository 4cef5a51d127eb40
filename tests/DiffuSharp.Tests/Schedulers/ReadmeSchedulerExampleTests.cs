// The README's C# example for the samplers ("Samplers and guidance"), as written there: it compiles, runs on the
// shipped model, and gives finite samples in [-1, 1] (the scheduler clips x0) that depend on the noise.
using DiffuSharp.Models;
using DiffuSharp.Schedulers;
using Xunit;

namespace DiffuSharp.Tests.Schedulers;

public class ReadmeSchedulerExampleTests
{
    [Fact]
    public void The_readme_example_samples_the_shipped_model()
    {
        string folder = Path.Combine(TestPaths.RepoRoot, "models", "fashion-mnist");
        // --- as in README.md (the folder path made absolute) ---
        var (config, unet) = ModelFolder.Load(folder);
        var scheduler = ModelSchedulers.Create(config, "DPM++ 2M Karras");          // or "unipc", "euler_a", "DDIMScheduler"
        int[] labels = [0, 1, 2, 3];
        var noise = Tensor.RandN([4, 1, 28, 28], new Rng(1));
        var model = ModelSchedulers.Denoiser(config, scheduler, (x, t) => unet.Forward(x, t, labels));   // x0 clipped
        Tensor x0 = SchedulerSampling.Sample(scheduler, model, noise, numInferenceSteps: 20,
            stepNoise: new Rng(2), timestepScale: ModelSchedulers.TimestepScale(config));   // (4, 1, 28, 28) in [-1, 1]
        // ---
        Assert.Equal([4, 1, 28, 28], x0.Shape);
        var v = x0.ToArray();
        Assert.All(v, f => Assert.True(float.IsFinite(f) && f >= -1.0001f && f <= 1.0001f, $"{f}"));
        Assert.True(v.Max() - v.Min() > 1, "the samples are flat");
        Assert.True(scheduler.Config.UseKarrasSigmas);
        Assert.Equal("DPMSolverMultistepScheduler", scheduler.Config.ClassName);
    }
}

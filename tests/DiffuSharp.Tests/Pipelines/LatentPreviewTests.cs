// The preview's x0 against the schedulers' own pred_original_sample (DDIM: ε and v prediction; Euler: σ-scaled
// latents), and the cheap latent→RGB map against the formula written out per pixel; the pipeline calls the preview
// once per step with the x0 of that step.
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using Xunit;

namespace DiffuSharp.Tests.Pipelines;

public class LatentPreviewTests
{
    static readonly string TinySd = Path.Combine(TestPaths.Diffusers, "pipelines", "tiny_sd");

    static double RelL2(Tensor a, Tensor b)
    {
        float[] x = a.Contiguous().ToArray(), y = b.Contiguous().ToArray();
        double num = 0, den = 0;
        for (int i = 0; i < x.Length; i++) { num += (x[i] - (double)y[i]) * (x[i] - (double)y[i]); den += (double)y[i] * y[i]; }
        return Math.Sqrt(num / den);
    }

    [Theory]
    [InlineData("ddim", PredictionType.Epsilon)]
    [InlineData("ddim", PredictionType.VPrediction)]
    [InlineData("euler", PredictionType.Epsilon)]
    [InlineData("euler_a", PredictionType.VPrediction)]
    public void Predicted_x0_is_the_schedulers_own(string sampler, PredictionType prediction)
    {
        var folderConfig = SchedulerConfig.Load(Path.Combine(TinySd, "scheduler", "scheduler_config.json")) with { PredictionType = prediction };
        var scheduler = SchedulerFactory.Create(sampler, folderConfig);
        scheduler.SetTimesteps(10);
        var rng = new Rng(11);
        var x = Tensor.RandN([2, 4, 8, 8], rng) * scheduler.InitNoiseSigma;
        int checkedSteps = 0;
        foreach (double t in scheduler.Timesteps.Take(4))
        {
            var input = scheduler.ScaleModelInput(x, t);
            var output = Tensor.RandN([2, 4, 8, 8], rng);
            var ours = LatentPreview.PredictedX0(scheduler, input, output, t);
            var step = scheduler.Step(output, t, x, rng);
            Assert.NotNull(step.PredOriginalSample);
            double rel = RelL2(ours, step.PredOriginalSample!);
            Assert.True(rel < 1e-5, $"{sampler} {prediction} t = {t}: relative L2 {rel:E2}");
            x = step.PrevSample;
            checkedSteps++;
        }
        Assert.Equal(4, checkedSteps);
    }

    [Fact]
    public void Cheap_rgb_is_the_fixed_linear_map()
    {
        var latents = Tensor.RandN([2, 4, 3, 5], new Rng(2)) * 2.0;
        var rgb = LatentPreview.CheapRgb(latents);
        Assert.Equal([2, 3, 3, 5], rgb.Shape);
        var l = latents.ToArray();
        var o = rgb.ToArray();
        float[,] m = { { 0.298f, 0.207f, 0.208f }, { 0.187f, 0.286f, 0.173f }, { -0.158f, 0.189f, 0.264f }, { -0.184f, -0.271f, -0.473f } };
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 15; p++)
                {
                    double v = 0;
                    for (int k = 0; k < 4; k++) v += l[(b * 4 + k) * 15 + p] * (double)m[k, c];
                    Assert.Equal(Math.Clamp(v / 2 + 0.5, 0, 1), o[(b * 3 + c) * 15 + p], 5);
                }
        Assert.Contains(o, v => v == 0f);                                           // ±2σ latents reach both clamps
        Assert.Contains(o, v => v == 1f);
    }

    [Fact]
    public void The_pipeline_previews_every_step()
    {
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(TinySd), "ddim");
        var seen = new List<(int Step, double T, int[] Shape)>();
        var steps = new List<double>();
        pipe.Txt2Img(new Txt2ImgRequest("a cat", null, 7.5, Steps: 3, Width: 64, Height: 64, NumImages: 2), new Rng(1),
            (i, t, _) => steps.Add(t), preview: (i, t, x0) => seen.Add((i, t, x0.Shape)));
        Assert.Equal(steps, seen.Select(s => s.T));
        Assert.Equal([0, 1, 2], seen.Select(s => s.Step));
        Assert.All(seen, s => Assert.Equal([2, 4, 8, 8], s.Shape));
    }
}

// A gray latent-diffusion pipeline (as train-latent writes for Fashion-MNIST: a 1-channel VAE, its own small size)
// through the server: listed with 1 channel and its own size, and sd-webui's txt2img without width/height draws
// gray images of that size (sd-webui's 512 is Stable Diffusion 1.x's own size, which the model's size gives there).
using System.Net;
using System.Text.Json;
using DiffuSharp.Imaging;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Server;
[Collection("Parallelism")]
public sealed class ServerGrayPipelineTests
{
    static void GrayPipeline(string models)
    {
        var unet = new UNet2DConditionModel(LatentTrainerTests.TinyUNet, new Rng(1));
        var text = new DiffuSharp.NN.Clip.ClipTextModel(LatentTrainerTests.TinyText, new Rng(2));
        var vae = new AutoencoderKL(VaeGradientTests.Tiny, new Rng(3));
        PipelineFolder.SaveStableDiffusion(Path.Combine(models, "gray-ldm"), new(unet.Config, VaeFolder.Weights(unet)), new(text.Config, VaeFolder.Weights(text)),
            new(vae.Config, VaeFolder.Weights(vae)), LatentTrainerTests.TokenizerFolder, 8,
            DiffuSharp.Schedulers.SchedulerConfig.DefaultsFor("DPMSolverMultistepScheduler") with { BetaSchedule = DiffuSharp.Schedulers.BetaSchedule.ScaledLinear, BetaStart = 0.00085, BetaEnd = 0.012 });
    }

    [Fact]
    public async Task A_gray_pipeline_is_listed_and_drawn_at_its_own_size()
    {
        await using var s = await ServerHarness.StartAsync(addModels: GrayPipeline);
        var models = await ServerApiTests.Json(await s.Client.GetAsync("/api/models"), HttpStatusCode.OK);
        var gray = models.EnumerateArray().Single(m => m.GetProperty("name").GetString() == "gray-ldm");
        Assert.Equal(1, gray.GetProperty("channels").GetInt32());
        Assert.Equal(8, gray.GetProperty("width").GetInt32());

        var r = await ServerApiTests.Json(await s.PostJson("/sdapi/v1/txt2img", new { prompt = "a bag", steps = 2, cfg_scale = 3,
            override_settings = new { sd_model_checkpoint = "gray-ldm" } }), HttpStatusCode.OK);
        var image = Png.Decode(Convert.FromBase64String(r.GetProperty("images")[0].GetString()!));
        Assert.Equal((8, 8, 1), (image.Width, image.Height, image.Channels));
        using var info = JsonDocument.Parse(r.GetProperty("info").GetString()!);
        Assert.Equal(8, info.RootElement.GetProperty("width").GetInt32());
    }
}

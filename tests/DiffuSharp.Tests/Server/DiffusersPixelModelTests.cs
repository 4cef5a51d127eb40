// serve lists a diffusers DDPMPipeline folder (model_index.json, unet/ with a UNet2DModel, scheduler/) as a pixel model
// and samples it with any scheduler configured from the folder's scheduler config: the page's image has the bits of
// diffusers' DDPM loop run through the library directly. A folder it cannot use is skipped with the reason.
using DiffuSharp.Imaging;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Server;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Server;

[Collection("Parallelism")]
public sealed class DiffusersPixelModelTests
{
    const string SchedulerConfigJson = """
        {"_class_name": "DDPMScheduler", "_diffusers_version": "0.27.2", "num_train_timesteps": 100, "beta_start": 0.0001,
         "beta_end": 0.02, "beta_schedule": "linear", "variance_type": "fixed_small", "clip_sample": true,
         "prediction_type": "epsilon"}
        """;

    /// <summary>root/NAME: model_index.json (DDPMPipeline), unet/ = the UNet2DModel fixture (diffusers' own weights,
    /// 16×16 RGB), scheduler/scheduler_config.json; <paramref name="unetConfig"/> rewrites unet/config.json.</summary>
    static string DdpmFolder(string root, string name, Func<string, string>? unetConfig = null)
    {
        string dir = Path.Combine(root, name), unet = Path.Combine(dir, "unet"), scheduler = Path.Combine(dir, "scheduler");
        Directory.CreateDirectory(unet);
        Directory.CreateDirectory(scheduler);
        string fixture = Path.Combine(TestPaths.Diffusers, "unet2d");
        foreach (var f in Directory.GetFiles(fixture)) File.Copy(f, Path.Combine(unet, Path.GetFileName(f)));
        if (unetConfig is not null) File.WriteAllText(Path.Combine(unet, "config.json"), unetConfig(File.ReadAllText(Path.Combine(unet, "config.json"))));
        File.WriteAllText(Path.Combine(scheduler, "scheduler_config.json"), SchedulerConfigJson);
        File.WriteAllText(Path.Combine(dir, "model_index.json"), """
            {"_class_name": "DDPMPipeline", "_diffusers_version": "0.27.2", "unet": ["diffusers", "UNet2DModel"],
             "scheduler": ["diffusers", "DDPMScheduler"]}
            """);
        return dir;
    }

    [Fact]
    public void A_ddpm_pipeline_folder_is_listed_as_a_pixel_model()
    {
        string root = TrainingFixtures.TempFolder("ddpm-catalog");
        try
        {
            DdpmFolder(root, "ddpm");
            DdpmFolder(root, "no-size", c => c.Replace("\"sample_size\": 16", "\"sample_size\": null"));
            DdpmFolder(root, "latent", c => c.Replace("\"in_channels\": 3", "\"in_channels\": 4"));
            var catalog = ModelCatalog.Scan(root);
            var m = Assert.Single(catalog.Models);
            Assert.Equal(("ddpm", ModelKind.Pixel, true), (m.Name, m.Kind, m.DiffusersUNet));
            Assert.Equal((16, 16, 3, 100, "DDPM"), (m.Width, m.Height, m.Channels, m.TrainSteps, m.DefaultSampler));
            Assert.Empty(m.ClassNames);
            Assert.False(m.Guidance);
            Assert.Equal("pixel", ModelInfo.From(m).Kind);
            Assert.Equal(2, catalog.Skipped.Count);
            Assert.Contains(catalog.Skipped, s => s.Contains("sample_size is missing"));
            Assert.Contains(catalog.Skipped, s => s.Contains("in_channels 4"));
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Theory]
    [InlineData("DDIM")]
    [InlineData("dpm++2m")]
    public void A_ddpm_pipeline_samples_with_the_bits_of_the_scheduler_loop(string sampler)
    {
        string root = TrainingFixtures.TempFolder("ddpm-run");
        try
        {
            string dir = DdpmFolder(root, "ddpm");
            var model = ModelCatalog.Scan(root).Find("ddpm")!;
            var spec = new GenerationSpec("ddpm", Sampler: sampler, Steps: 3, Seed: 5, CfgScale: 1).Resolve(model, new ServerLimits(), new Random(0));
            var images = new List<JobImage>();
            var result = new GenerationEngine().Run(new Job("j", spec, model), images);
            var got = Png.Decode(Assert.Single(result.Images).Png);

            var unet = ComponentLoader.LoadUNet2D(Path.Combine(dir, "unet"));
            unet.Eval();
            var scheduler = SchedulerFactory.Create(SchedulerFactory.ConfigFor(sampler, SchedulerConfig.Load(Path.Combine(dir, "scheduler", "scheduler_config.json"))));
            Tensor expected;
            using (Tensor.NoGrad())
                expected = SchedulerSampling.Sample(scheduler, (x, t) => unet.Forward(x, t), Tensor.RandN([1, 3, 16, 16], new Rng(5)), 3);
            var want = ImageGrid.Make(expected.ToArray(), 1, 3, 16, 16, padding: 0);
            Assert.Equal((16, 16, 3), (got.Width, got.Height, got.Channels));
            Assert.Equal(want.Pixels, got.Pixels);
            Assert.True(got.Pixels.Distinct().Count() > 16, "the image is flat");
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}

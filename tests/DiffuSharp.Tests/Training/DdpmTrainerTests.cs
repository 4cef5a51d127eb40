// DDPM training of diffusers' UNet2DModel: the loss's gradients match finite differences; the loss, noisy inputs,
// learning-rate schedules, EMA decays and whole DDPMPipeline runs match diffusers 0.27.2's own numbers
// (Fixtures/ddpm_pipeline*, make_ddpm_pipeline.py); the folder DiffuSharp writes is the one diffusers writes (same
// JSON values, same tensors) and loads back with the same outputs; the loss falls; a resumed run equals the
// uninterrupted one bit for bit.
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

[Collection(nameof(SerialCollection))]
public sealed class DdpmTrainerTests
{
    static string FixtureFolder => Path.Combine(TestPaths.Fixtures, "ddpm_pipeline");
    static SafeTensorsFile Reference => SafeTensorsFile.Open(Path.Combine(TestPaths.Fixtures, "ddpm_pipeline.safetensors"));

    /// <summary>8×8 gray, two levels, attention, class embeddings, scale-shift resnets and dropout: every part the trainer drives.</summary>
    internal static UNet2DConfig Tiny => new()
    {
        SampleSize = 8, InChannels = 1, OutChannels = 1, BlockOutChannels = [8, 16], LayersPerBlock = 1,
        DownBlockTypes = [DownBlockType.DownBlock2D, DownBlockType.AttnDownBlock2D], UpBlockTypes = [UpBlockType.AttnUpBlock2D, UpBlockType.UpBlock2D],
        NormNumGroups = 4, AttentionHeadDim = 8, NumClassEmbeds = 3, ResnetTimeScaleShift = TimeScaleShift.ScaleShift, Dropout = 0.1f,
    };

    static ImageDataset Blobs(int n, ulong seed)
    {
        var rng = new Rng(seed);
        var img = new float[n * 64];
        Array.Fill(img, -1f);
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            int s = 2 + rng.NextInt(4), x0 = rng.NextInt(8 - s), y0 = rng.NextInt(8 - s);
            labels[i] = rng.NextInt(3);
            float v = 0.5f * labels[i];
            for (int y = y0; y < y0 + s; y++)
                for (int x = x0; x < x0 + s; x++) img[i * 64 + y * 8 + x] = v;
        }
        return new ImageDataset(img, n, 1, 8, 8, labels, 3);
    }

    static DdpmObjective Objective(PredictionType p = PredictionType.Epsilon)
        => new() { Scheduler = SchedulerConfig.DefaultsFor("DDPMScheduler") with { PredictionType = p }, RandomFlip = true };

    static TrainConfig Config(long steps) => new(BatchSize: 4, Lr: 2e-3, WarmupSteps: 2, GradClip: 1.0, EmaRate: "0.99", TotalSteps: steps, Seed: 5);

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.VPrediction)]
    [InlineData(PredictionType.Sample)]
    public void Loss_gradients_match_finite_differences(PredictionType prediction)
    {
        var rng = new Rng(21);
        var config = Tiny with { Dropout = 0 };
        var unet = new UNet2DModel(config, rng);
        var scheduler = SchedulerFactory.Create(SchedulerConfig.DefaultsFor("DDPMScheduler") with { PredictionType = prediction });
        var x0 = Tensor.Rand([2, 1, 8, 8], rng, -1f, 1f);
        var noise = Tensor.RandN([2, 1, 8, 8], rng);
        int[] t = [40, 700], labels = [2, 0];
        var p = unet.NamedParameters().ToDictionary(x => x.Name, x => x.Param);
        string[] pick =
        [
            "conv_in.weight", "time_embedding.linear_1.weight", "class_embedding.weight", "down_blocks.0.resnets.0.time_emb_proj.weight",
            "down_blocks.1.attentions.0.to_k.weight", "mid_block.resnets.0.norm1.bias", "up_blocks.0.resnets.1.conv_shortcut.weight",
            "up_blocks.0.upsamplers.0.conv.weight", "conv_norm_out.weight", "conv_out.bias",
        ];
        foreach (var name in pick) Assert.True(p.ContainsKey(name), $"no parameter {name}");
        GradCheck.Check(_ => DdpmTrainer.Loss(unet, scheduler, x0, t, noise, labels).Reshape(1), pick.Select(n => p[n]).ToArray(), rng,
            eps: 1e-2, rtol: 2e-2, atol: 1e-4, samples: 10);
    }

    [Theory]
    [InlineData("epsilon")]
    [InlineData("v_prediction")]
    [InlineData("sample")]
    public void Noisy_inputs_outputs_and_losses_match_diffusers(string prediction)
    {
        var r = Reference;
        var unet = ComponentLoader.LoadUNet2D(Path.Combine(FixtureFolder, "unet"));
        var sched = SchedulerFactory.Create(SchedulerConfig.FromJson(r.Metadata[$"{prediction}.scheduler_config"], "fixture", "DDPMScheduler"));
        var x0 = Tensor.FromArray(r.ReadFloat32("x0"), 4, 1, 8, 8);
        var noise = Tensor.FromArray(r.ReadFloat32("noise"), 4, 1, 8, 8);
        int[] t = r.ReadInt64("timesteps").Select(v => (int)v).ToArray();
        var noisy = sched.AddNoise(x0, noise, t.Select(v => (double)v).ToArray());
        GradCheck.AssertClose(r.ReadFloat32($"{prediction}.noisy"), noisy.ToArray(), rtol: 1e-6, atol: 1e-6, "add_noise");
        using (Tensor.NoGrad())
        {
            var output = unet.Forward(noisy, Tensor.FromArray(t.Select(v => (float)v).ToArray(), 4));
            GradCheck.AssertClose(r.ReadFloat32($"{prediction}.output"), output.ToArray(), rtol: 1e-4, atol: 1e-5, "UNet output");
            double loss = DdpmTrainer.Loss(unet, sched, x0, t, noise, null).Item(), expected = r.ReadFloat32($"{prediction}.loss")[0];
            Assert.True(Math.Abs(loss - expected) <= 1e-5 * Math.Abs(expected), $"{prediction} loss {loss}, diffusers {expected}");
        }
    }

    [Theory]
    [InlineData("cosine", LrSchedule.Cosine)]
    [InlineData("linear", LrSchedule.Linear)]
    [InlineData("constant_with_warmup", LrSchedule.ConstantWithWarmup)]
    public void Lr_schedules_are_diffusers_get_scheduler(string name, LrSchedule schedule)
    {
        var expected = Reference.ReadFloat64($"lr.{name}");
        var o = new DdpmObjective { LrSchedule = schedule };
        for (int step = 0; step < expected.Length; step++)
            Assert.True(Math.Abs(o.LrFactor(step, 3, 10) - expected[step]) < 1e-12, $"{name} step {step}: {o.LrFactor(step, 3, 10)} vs {expected[step]}");
        Assert.Equal(schedule, DdpmObjective.ParseLrSchedule(name));
    }

    [Fact]
    public void Ema_decay_is_diffusers_ema_model_warmup()
    {
        var expected = Reference.ReadFloat64("ema_decay");
        var o = new DdpmObjective();
        for (int k = 1; k <= expected.Length; k++)
            Assert.True(Math.Abs(o.EmaDecay(k, 0.999) - expected[k - 1]) < 1e-12, $"update {k}: {o.EmaDecay(k, 0.999)} vs {expected[k - 1]}");
    }

    [Theory]
    [InlineData("ddim", "ddim_image")]
    [InlineData("ddpm", "ddpm_image")]
    public void Pipeline_runs_match_diffusers_ddpm_pipeline(string sampler, string key)
    {
        var r = Reference;
        var (unet, config) = DdpmPipelineFolder.Load(FixtureFolder);
        var scheduler = SchedulerFactory.Create(sampler, config);
        var xT = Tensor.FromArray(r.ReadFloat32("x_T"), 2, 1, 8, 8);
        var stepNoise = r.ReadFloat32("step_noise");
        int draws = 0;
        var x = DdpmPipeline.Sample(unet, scheduler, xT, 5, i => { draws++; return Tensor.FromArray(stepNoise.AsSpan(i * 128, 128).ToArray(), 2, 1, 8, 8); });
        var image = x.ToArray().Select(v => Math.Clamp(v / 2 + 0.5f, 0f, 1f)).ToArray();      // (2, 1, 8, 8) = (2, 8, 8, 1) for one channel
        GradCheck.AssertClose(r.ReadFloat32(key), image, rtol: 1e-4, atol: 1e-5, key);
        if (sampler == "ddpm") Assert.Equal(int.Parse(r.Metadata["ddpm_image.noise_draws"]) + 1, draws);   // the last step draws nothing
    }

    [Fact]
    public void Written_folder_is_what_diffusers_writes_and_loads_back()
    {
        var (unet, config) = DdpmPipelineFolder.Load(FixtureFolder);
        using var dir = new TempDir();
        DdpmPipelineFolder.Save(dir.Path, unet.Config, VaeFolder.Weights(unet), config);
        foreach (var file in new[] { "model_index.json", "unet/config.json", "scheduler/scheduler_config.json" })
            AssertSameJson(Path.Combine(FixtureFolder, file), Path.Combine(dir.Path, file));
        var theirs = SafeTensorsFile.Open(Path.Combine(FixtureFolder, "unet", UNet2DFolder.WeightsFile));
        var ours = SafeTensorsFile.Open(Path.Combine(dir.Path, "unet", UNet2DFolder.WeightsFile));
        Assert.Equal(theirs.Names.Order(StringComparer.Ordinal), ours.Names.Order(StringComparer.Ordinal));
        foreach (var name in theirs.Names)
        {
            Assert.Equal(theirs.Info(name).Shape, ours.Info(name).Shape);
            Assert.Equal(theirs.ReadFloat32(name), ours.ReadFloat32(name));
        }
        Assert.Equal("pt", ours.Metadata["format"]);
        var (back, backConfig) = DdpmPipelineFolder.Load(dir.Path);
        Assert.Equal(config.ToJson(), backConfig.ToJson());
        var x = Tensor.RandN([2, 1, 8, 8], new Rng(3));
        using (Tensor.NoGrad())
            Assert.Equal(unet.Forward(x, Tensor.FromArray([3f, 900f], 2)).ToArray(), back.Forward(x, Tensor.FromArray([3f, 900f], 2)).ToArray());
    }

    /// <summary>Same keys and values (numbers compared as numbers: Python writes 0.0 and 1e-05, .NET 0 and 1E-05).</summary>
    static void AssertSameJson(string expectedPath, string actualPath)
    {
        var expected = JsonNode.Parse(File.ReadAllText(expectedPath))!.AsObject();
        var actual = JsonNode.Parse(File.ReadAllText(actualPath))!.AsObject();
        Assert.Equal(expected.Select(p => p.Key).Order(StringComparer.Ordinal), actual.Select(p => p.Key).Order(StringComparer.Ordinal));
        foreach (var (key, value) in expected)
        {
            var other = actual[key];
            if (value is JsonValue v && v.TryGetValue(out double d)) Assert.True(other is JsonValue o && o.TryGetValue(out double e) && e == d, $"{actualPath}: {key} = {other?.ToJsonString()}, diffusers {d}");
            else Assert.True(JsonNode.DeepEquals(value, other), $"{actualPath}: {key} = {other?.ToJsonString()}, diffusers {value?.ToJsonString()}");
        }
    }

    [Fact]
    public void Trained_weights_written_as_a_pipeline_load_back_with_the_same_outputs()
    {
        var t = new DdpmTrainer(Tiny, Config(2), Objective(PredictionType.VPrediction), Blobs(16, 4));
        t.Step();
        t.Step();
        using var dir = new TempDir();
        DdpmPipelineFolder.Save(dir.Path, t.UNetConfig, t.ExportWeights(t.Ema), t.Objective.Scheduler);
        var (loaded, sched) = DdpmPipelineFolder.Load(dir.Path);
        Assert.Equal(PredictionType.VPrediction, sched.PredictionType);
        Assert.Equal(3, loaded.Config.NumClassEmbeds);
        var ema = t.EmaModel();
        var x = Tensor.RandN([3, 1, 8, 8], new Rng(8));
        var ts = Tensor.FromArray([0f, 10f, 999f], 3);
        using (Tensor.NoGrad())
            Assert.Equal(ema.Forward(x, ts, [0, 1, 2]).ToArray(), loaded.Forward(x, ts, [0, 1, 2]).ToArray());
        Assert.NotEqual(t.Flat.Values, t.Ema!.Shadow[0].ToArray());          // the folder holds the EMA, not the live weights
    }

    [Fact]
    public void Loss_falls_when_training_on_a_small_set()
    {
        var t = new DdpmTrainer(Tiny with { Dropout = 0 }, new TrainConfig(BatchSize: 8, Lr: 3e-3, GradClip: 1, EmaRate: "", TotalSteps: 60, Seed: 2),
            new DdpmObjective { LrSchedule = LrSchedule.Constant }, Blobs(16, 3));
        var losses = Enumerable.Range(0, 60).Select(_ => t.Step().Loss).ToArray();
        Assert.True(losses[^10..].Average() < 0.5 * losses[..10].Average(), $"first {losses[..10].Average():F3}, last {losses[^10..].Average():F3}");
    }

    [Fact]
    public void Resumed_run_equals_the_uninterrupted_run_bit_for_bit()
    {
        var data = Blobs(24, 1);
        var straight = new DdpmTrainer(Tiny, Config(6), Objective(), data);
        for (int i = 0; i < 6; i++) straight.Step();

        using var dir = new TempDir();
        var first = new DdpmTrainer(Tiny, Config(6), Objective(), data);
        for (int i = 0; i < 3; i++) first.Step();
        string ckpt = DdpmCheckpoint.Save(first, dir.Path);
        var resumed = DdpmCheckpoint.Load(ckpt, data);
        Assert.Equal(3, resumed.StepCount);
        Assert.Equal(first.Objective.ToJson().ToJsonString(), resumed.Objective.ToJson().ToJsonString());
        for (int i = 0; i < 3; i++) resumed.Step();

        Assert.Equal(straight.Flat.Values, resumed.Flat.Values);
        Assert.Equal(straight.Ema!.Shadow[0].ToArray(), resumed.Ema!.Shadow[0].ToArray());
        Assert.Equal(straight.Optimizer.ExportState().ExpAvgSq[0], resumed.Optimizer.ExportState().ExpAvgSq[0]);
    }

    [Fact]
    public void Data_the_unet_cannot_take_is_refused_by_key()
    {
        var gray = Blobs(8, 1);
        var e = Assert.Throws<ArgumentException>(() => new DdpmTrainer(Tiny with { SampleSize = 16 }, Config(1), Objective(), gray));
        Assert.Contains("sample_size is 16", e.Message);
        e = Assert.Throws<ArgumentException>(() => new DdpmTrainer(Tiny with { InChannels = 3, OutChannels = 3 }, Config(1), Objective(), gray));
        Assert.Contains("in_channels is 3", e.Message);
        e = Assert.Throws<ArgumentException>(() => new DdpmTrainer(Tiny with { OutChannels = 2 }, Config(1), Objective(), gray));
        Assert.Contains("out_channels 2", e.Message);
        var unlabelled = new ImageDataset(gray.Images, 8, 1, 8, 8);
        e = Assert.Throws<ArgumentException>(() => new DdpmTrainer(Tiny, Config(1), Objective(), unlabelled));
        Assert.Contains("num_class_embeds 3 needs labelled images", e.Message);
    }
}

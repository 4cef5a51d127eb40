// diffusharp train --unet-preset / --unet-config end to end on a tiny UNet2DModel: the run writes a checkpoint, a
// DDPMPipeline folder (model/) that DdpmPipelineFolder loads and `sample --model` samples with several schedulers, a
// log and a grid; a stopped-and-resumed run writes the same weights as an uninterrupted one, byte for byte (with a
// schedule that does not depend on --steps: a cosine or linear one is stretched when a resume raises --steps); bad
// configs and flags are one error line naming the key, the value and the file.
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Cli;

[Collection(nameof(SerialCollection))]
public sealed class TrainDdpmCommandTests
{
    static string[] Tiny(string outDir, int steps) =>
    [
        "train", "--unet-preset", "ddpm-tiny", "--out", outDir, "--steps", steps.ToString(), "--batch-size", "4", "--max-images", "32",
        "--lr", "1e-3", "--lr-warmup-steps", "1", "--log-interval", "1", "--save-interval", "2", "--sample-interval", "3", "--sample-steps", "2",
        "--prediction-type", "v_prediction", "--lr-scheduler", "constant_with_warmup",
    ];

    static string[] Args(string outDir, int steps) => Tiny(outDir, steps);

    [Fact]
    public void Trains_writes_a_pipeline_folder_samples_it_and_resumes_bit_exactly()
    {
        using var dir = new TempDir();
        string run = Path.Combine(dir.Path, "run"), straight = Path.Combine(dir.Path, "straight");
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(Args(run, 3));
        Assert.True(code == 0, stderr);
        Assert.Contains("UNet2DModel 16,32", stdout);
        Assert.Contains("v_prediction prediction, T = 1000; 32 training images", stdout);
        var (unet, sched) = DdpmPipelineFolder.Load(Path.Combine(run, "model"));
        Assert.Equal([16, 32], unet.Config.BlockOutChannels);
        Assert.Equal(PredictionType.VPrediction, sched.PredictionType);
        Assert.Equal("DDPMScheduler", sched.ClassName);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
        Assert.True(File.Exists(Path.Combine(run, "samples", "step_0000003.png")));

        var again = TrainSampleEndToEndTests.Cli(Args(run, 3));
        Assert.Equal(2, again.Code);
        Assert.Contains("already holds a training run", again.Stderr);
        TrainSampleEndToEndTests.AssertOneLineError(["train", "--out", run, "--resume", "--lr", "0.1"], "--lr cannot change on --resume");

        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["train", "--out", run, "--resume", "--steps", "5"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("resumed", stdout);
        Assert.Contains("at step 3", stdout);
        Assert.Equal(5, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);

        (code, _, stderr) = TrainSampleEndToEndTests.Cli(Args(straight, 5));
        Assert.True(code == 0, stderr);
        foreach (var file in new[] { "checkpoint/diffusion_pytorch_model.safetensors", "checkpoint/ema.safetensors", "checkpoint/optimizer.safetensors", "model/unet/diffusion_pytorch_model.safetensors" })
            Assert.True(File.ReadAllBytes(Path.Combine(run, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(straight, file))), $"{file} differs from the uninterrupted run");

        foreach (var sampler in new[] { "ddpm", "ddim", "euler_a", "dpm++2m" })
        {
            string png = Path.Combine(dir.Path, $"{sampler}.png"), npy = Path.Combine(dir.Path, $"{sampler}.npy");
            (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["sample", "--model", Path.Combine(run, "model"), "--sampler", sampler, "--steps", "3", "--n", "2", "--out", png, "--save-npy", npy]);
            Assert.True(code == 0, stderr);
            Assert.Contains($"wrote 2 samples to {png} ({sampler}, 3 steps)", stdout);
            var (shape, data) = DiffuSharp.IO.Npy.ReadFloat32(npy);
            Assert.Equal([2, 1, 28, 28], shape);
            Assert.All(data, v => Assert.True(float.IsFinite(v)));
        }
    }

    [Theory]
    [InlineData("\"layers_per_block\": 1, \"skip_time_act\": true", "unknown key \"skip_time_act\"")]
    [InlineData("\"time_embedding_type\": \"fourier\"", "\"time_embedding_type\" = \"fourier\": unsupported value")]
    [InlineData("\"block_out_channels\": [16, 30], \"norm_num_groups\": 8, \"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"]",
        "\"norm_num_groups\" = 8: does not divide block_out_channels[1] = 30")]
    [InlineData("\"block_out_channels\": [16, 32]", "\"down_block_types\" = (absent): 4 down blocks for 2 block_out_channels")]
    public void A_config_key_or_value_we_do_not_support_is_one_error_naming_key_and_file(string entries, string expected)
    {
        using var dir = new TempDir();
        string config = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(config, "{\"_class_name\": \"UNet2DModel\", \"sample_size\": 28, \"in_channels\": 1, \"out_channels\": 1, " + entries + "}");
        TrainSampleEndToEndTests.AssertOneLineError(["train", "--unet-config", config, "--out", Path.Combine(dir.Path, "run"), "--max-images", "8"], expected);
        TrainSampleEndToEndTests.AssertOneLineError(["train", "--unet-config", config, "--out", Path.Combine(dir.Path, "run"), "--max-images", "8"], config);
    }

    [Theory]
    [InlineData(new[] { "--unet-config", "/nonexistent/unet/config.json" }, "--unet-config /nonexistent/unet/config.json: file not found")]
    [InlineData(new[] { "--unet-preset", "huge" }, "unknown --unet-preset 'huge'; presets: ddpm-fashion-mnist")]
    [InlineData(new[] { "--unet-preset", "ddpm-tiny", "--prediction-type", "x0" }, "--prediction-type must be epsilon, v_prediction, sample; got 'x0'")]
    [InlineData(new[] { "--unet-preset", "ddpm-tiny", "--ddpm-beta-schedule", "cosine" }, "--ddpm-beta-schedule must be linear, scaled_linear, squaredcos_cap_v2")]
    [InlineData(new[] { "--unet-preset", "ddpm-tiny", "--lr-scheduler", "step" }, "--lr-scheduler: lr_scheduler must be one of cosine")]
    [InlineData(new[] { "--unet-preset", "ddpm-anime-64" }, "has 1×28×28 images; the UNet takes 3×64×64")]
    [InlineData(new[] { "--unet-preset", "ddpm-tiny", "--unet-config", "x.json" }, "exclude each other")]
    public void Bad_flags_are_one_error_line(string[] flags, string expected)
    {
        using var dir = new TempDir();
        TrainSampleEndToEndTests.AssertOneLineError(["train", .. flags, "--out", Path.Combine(dir.Path, "run"), "--max-images", "8"], expected);
    }
}

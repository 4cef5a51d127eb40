// diffusharp train-controlnet end to end on a tiny random pipeline folder: the run copies the pipeline, writes a
// checkpoint, a diffusers ControlNetModel folder that txt2img drives with a control image, a log and a sample grid;
// --resume continues; bad input (a pipeline without a UNet, a condition other than edges/silhouette, flags a resume
// cannot change) is one error line.
using System.Text.Json.Nodes;
using DiffuSharp.Imaging;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class TrainControlNetCommandTests
{
    /// <summary>A random tiny StableDiffusionPipeline folder for Fashion-MNIST padded to 32 (VAE of 2 levels → 2×16×16 latents).</summary>
    internal static string Pipeline(string dir)
    {
        var vae = new AutoencoderKL(VaeGradientTests.Tiny with { SampleSize = 32, ScalingFactor = 0.5 }, new Rng(1));
        var unetConfig = LatentTrainerTests.TinyUNet with { SampleSize = 16, BlockOutChannels = [32, 32], NormNumGroups = 8, CrossAttentionDim = [16, 16] };
        var unet = new UNet2DConditionModel(unetConfig, new Rng(2));
        var textConfig = LatentTrainerTests.TinyText with { HiddenSize = 16, IntermediateSize = 32, ProjectionDim = 16 };
        var text = new ClipTextModel(textConfig, new Rng(3));
        var training = SchedulerConfig.DefaultsFor("DDPMScheduler") with
        {
            BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = BetaSchedule.ScaledLinear, ClipSample = false, StepsOffset = 1, TimestepSpacing = TimestepSpacing.Leading,
        };
        string folder = Path.Combine(dir, "pipe");
        PipelineFolder.SaveStableDiffusion(folder, new(unetConfig, VaeFolder.Weights(unet)), new(textConfig, VaeFolder.Weights(text)),
            new(vae.Config, VaeFolder.Weights(vae)), LatentTrainerTests.TokenizerFolder, 8, SchedulerFactory.ConfigFor("dpm++2m", training, karras: false));
        return folder;
    }

    /// <summary>The tiny run's arguments; <paramref name="extra"/> replaces the value of a flag already there, or adds it.</summary>
    static string[] Tiny(string pipeline, string outDir, int steps, params string[] extra)
    {
        var args = new List<string>
        {
            "train-controlnet", "--pipeline", pipeline, "--condition", "edges", "--out", outDir, "--steps", steps.ToString(), "--batch-size", "4",
            "--max-train", "40", "--log-interval", "1", "--save-interval", "2", "--sample-interval", "3", "--warmup", "1",
        };
        for (int i = 0; i < extra.Length; i++)
        {
            bool hasValue = i + 1 < extra.Length && !extra[i + 1].StartsWith("--", StringComparison.Ordinal);
            int at = args.IndexOf(extra[i]);
            if (at >= 0 && hasValue) args[at + 1] = extra[++i];
            else { args.Add(extra[i]); if (hasValue) args.Add(extra[++i]); }
        }
        return [.. args];
    }

    [Fact]
    public void Trains_writes_a_controlnet_that_txt2img_drives_and_resumes()
    {
        using var dir = new TempDir();
        string pipe = Pipeline(dir.Path), run = Path.Combine(dir.Path, "run");
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(Tiny(pipe, run, 3));
        Assert.True(code == 0, stderr);
        Assert.Contains("on 2×16×16 latents; edges of 40 images", stdout);
        Assert.Contains("step 3/3", stdout);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
        Assert.True(File.Exists(Path.Combine(run, "samples", "step_0000003.png")));
        var grid = Png.Read(Path.Combine(run, "samples", "step_0000003.png"));
        Assert.Equal(2 + 3 * 34, grid.Height);                               // three rows of 32-pixel tiles
        foreach (var part in new[] { "model_index.json", "unet/config.json", "text_encoder/model.safetensors", "vae/config.json", "tokenizer/vocab.json" })
            Assert.True(File.Exists(Path.Combine(run, "pipeline", part)), part);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "controlnet", "config.json")))!;
        Assert.Equal("ControlNetModel", (string?)config["_class_name"]);
        Assert.Equal(3, (int)config["conditioning_channels"]!);
        Assert.Equal("[16,32]", config["conditioning_embedding_out_channels"]!.ToJsonString());
        var net = ComponentLoader.LoadControlNet(Path.Combine(run, "controlnet"));
        Assert.Contains(net.NamedParameters(), p => p.Name == "controlnet_mid_block.weight" && p.Param.ToArray().Any(v => v != 0));

        // a control image as `diffusharp edges` writes one, at the output's size
        string control = Path.Combine(dir.Path, "edges.png"), png = Path.Combine(dir.Path, "bag.png");
        var masks = ControlImages.Compute(DiffuSharp.Data.FashionMnist.Load(train: false), 2, ControlCondition.Edges);
        Png.Write(control, new Image8(32, 32, 1, masks.Masks.AsSpan(0, 1024).ToArray().Select(v => (byte)(v * 255)).ToArray()));
        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["txt2img", "--model", Path.Combine(run, "pipeline"), "--prompt", "a photo of a bag", "--steps", "3",
            "--controlnet", Path.Combine(run, "controlnet"), "--control-image", control, "--out", png]);
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(png));

        var again = TrainSampleEndToEndTests.Cli(Tiny(pipe, run, 3));
        Assert.Equal(2, again.Code);
        Assert.Contains("already holds a run", again.Stderr);
        TrainSampleEndToEndTests.AssertOneLineError(["train-controlnet", "--out", run, "--resume", "--lr", "0.1", "--max-train", "40"], "--lr cannot change on --resume");
        TrainSampleEndToEndTests.AssertOneLineError(["train-controlnet", "--out", run, "--resume", "--condition", "silhouette", "--max-train", "40"], "--condition cannot change on --resume");
        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["train-controlnet", "--out", run, "--resume", "--steps", "4", "--max-train", "40"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("at step 3", stdout);
        Assert.Contains("step 4/4", stdout);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
    }

    [Fact]
    public void A_pipeline_without_a_unet_is_one_error_line()
    {
        using var dir = new TempDir();
        string pipe = Pipeline(dir.Path);
        string noEntry = Path.Combine(dir.Path, "no-entry"), noFolder = Path.Combine(dir.Path, "no-folder");
        foreach (var copy in new[] { noEntry, noFolder })
            foreach (var f in Directory.EnumerateFiles(pipe, "*", SearchOption.AllDirectories))
            {
                string to = Path.Combine(copy, Path.GetRelativePath(pipe, f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to);
            }
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(noEntry, "model_index.json")))!.AsObject();
        index.Remove("unet");
        File.WriteAllText(Path.Combine(noEntry, "model_index.json"), index.ToJsonString());
        Directory.Delete(Path.Combine(noFolder, "unet"), recursive: true);
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(noEntry, Path.Combine(dir.Path, "r1"), 1), "has no UNet: ");
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(noEntry, Path.Combine(dir.Path, "r1"), 1), "lists no \"unet\"");
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(noFolder, Path.Combine(dir.Path, "r2"), 1), "is missing");
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "r1")));
    }

    [Theory]
    [InlineData(new[] { "--condition", "depth" }, "--condition must be edges or silhouette, got 'depth'")]
    [InlineData(new[] { "--pipeline", "/nonexistent/pipe" }, "--pipeline folder not found: /nonexistent/pipe")]
    [InlineData(new[] { "--conditioning-embedding-out-channels", "16,32,64" }, "needs 2 positive entries")]
    [InlineData(new[] { "--resume", "--overwrite" }, "exclude each other")]
    public void Bad_flags_are_one_error_line(string[] extra, string expected)
    {
        using var dir = new TempDir();
        string pipe = Pipeline(dir.Path);
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(pipe, Path.Combine(dir.Path, "r"), 1, extra), expected);
    }
}

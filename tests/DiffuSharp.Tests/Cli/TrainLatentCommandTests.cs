// diffusharp train-latent end to end on tiny models: the run encodes the training images once, writes a checkpoint,
// a diffusers pipeline folder that txt2img samples, a log and a grid; --resume continues; a second run into the
// same folder is refused; bad input (a VAE whose latents the UNet cannot halve, an empty or short caption file,
// flags that a resume cannot change) is one error line.
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class TrainLatentCommandTests
{
    /// <summary>A random tiny AutoencoderKL folder for Fashion-MNIST padded to 32 (2 levels → 2×16×16 latents).</summary>
    static string Vae(string dir, int sampleSize = 32)
    {
        var vae = new AutoencoderKL(VaeGradientTests.Tiny with { SampleSize = sampleSize, ScalingFactor = 0.5 }, new Rng(1));
        string folder = Path.Combine(dir, $"vae{sampleSize}");
        VaeFolder.Save(folder, vae.Config, VaeFolder.Weights(vae));
        return folder;
    }

    /// <summary>The tiny run's arguments; <paramref name="extra"/> replaces the value of a flag already there, or adds it.</summary>
    static string[] Tiny(string vae, string outDir, int steps, params string[] extra)
    {
        var args = new List<string>
        {
            "train-latent", "--vae", vae, "--out", outDir, "--steps", steps.ToString(), "--batch-size", "4", "--max-train", "40",
            "--block-out-channels", "32,32", "--down-block-types", "CrossAttnDownBlock2D,DownBlock2D", "--layers-per-block", "1", "--attention-heads", "2",
            "--text-layers", "1", "--text-width", "16", "--text-heads", "2", "--max-length", "8", "--tokenizer", LatentTrainerTests.TokenizerFolder,
            "--log-interval", "1", "--save-interval", "2", "--sample-interval", "0", "--warmup", "1",
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
    public void Trains_writes_a_pipeline_that_txt2img_samples_and_resumes()
    {
        using var dir = new TempDir();
        string vae = Vae(dir.Path), run = Path.Combine(dir.Path, "run");
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(Tiny(vae, run, 3));
        Assert.True(code == 0, stderr);
        Assert.Contains("on 2×16×16 latents", stdout);
        Assert.Contains("40 captioned images", stdout);
        Assert.Contains("step 3/3", stdout);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
        foreach (var part in new[] { "model_index.json", "unet/config.json", "text_encoder/model.safetensors", "vae/config.json", "tokenizer/vocab.json", "scheduler/scheduler_config.json" })
            Assert.True(File.Exists(Path.Combine(run, "pipeline", part)), part);
        string SamplerConfig() => File.ReadAllText(Path.Combine(run, "pipeline", "scheduler", "scheduler_config.json"));
        string fresh = SamplerConfig();
        Assert.Contains("\"timestep_spacing\": \"leading\"", fresh);              // the training schedule's, as from_config carries it

        string png = Path.Combine(dir.Path, "bag.png");
        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["txt2img", "--model", Path.Combine(run, "pipeline"), "--prompt", "a photo of a bag", "--steps", "3", "--out", png]);
        Assert.True(code == 0, stderr);
        Assert.Contains("32x32", stdout);
        Assert.True(File.Exists(png));

        // eval-t2i on the same pipeline: every measure present, shares in [0, 1]
        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["eval-t2i", "--model", Path.Combine(run, "pipeline"), "--n-per-class", "1", "--pairs", "3",
            "--steps", "2", "--json"]);
        Assert.True(code == 0, stderr);
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .ToDictionary(r => r.GetProperty("name").GetString()!, r => r.GetProperty("value").GetDouble());
        Assert.Equal(["class_accuracy", "fd", "fd_train_vs_test", "dark_below_light", "small_below_large"], rows.Keys);
        foreach (var share in new[] { "class_accuracy", "dark_below_light", "small_below_large" }) Assert.InRange(rows[share], 0, 1);
        Assert.True(rows["fd"] > 0);
        TrainSampleEndToEndTests.AssertOneLineError(["eval-t2i", "--model", Path.Combine(run, "pipeline"), "--n-per-class", "0", "--pairs", "0"], "nothing to evaluate");

        var again = TrainSampleEndToEndTests.Cli(Tiny(vae, run, 3));
        Assert.Equal(2, again.Code);
        Assert.Contains("already holds a run", again.Stderr);
        TrainSampleEndToEndTests.AssertOneLineError(["train-latent", "--out", run, "--resume", "--lr", "0.1", "--max-train", "40"], "--lr cannot change on --resume");
        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["train-latent", "--out", run, "--resume", "--steps", "4", "--max-train", "40"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("resumed", stdout);
        Assert.Contains("at step 3", stdout);
        Assert.Contains("step 4/4", stdout);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
        Assert.Equal(fresh, SamplerConfig());                                     // a resumed run writes the same sampler
    }

    [Fact]
    public void Init_from_fine_tunes_a_pipeline_with_its_configs_and_stores_the_caption_settings()
    {
        using var dir = new TempDir();
        string vae = Vae(dir.Path), first = Path.Combine(dir.Path, "first"), tuned = Path.Combine(dir.Path, "tuned");
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli(Tiny(vae, first, 2, "--text-width", "24"));
        Assert.True(code == 0, stderr);
        string[] fineTune = ["train-latent", "--vae", vae, "--out", tuned, "--steps", "1", "--batch-size", "4", "--max-train", "40", "--max-length", "8",
            "--tokenizer", LatentTrainerTests.TokenizerFolder, "--sample-interval", "0", "--init-from", Path.Combine(first, "pipeline"), "--bare-captions", "0.25"];
        (code, var stdout, stderr) = TrainSampleEndToEndTests.Cli(fineTune);
        Assert.True(code == 0, stderr);
        Assert.Contains("fine-tuning the UNet and text encoder of", stdout);
        var text = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(tuned, "pipeline", "text_encoder", "config.json"))).RootElement;
        Assert.Equal(24, text.GetProperty("hidden_size").GetInt32());           // the first run's width, not the default 128
        var state = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(tuned, "checkpoint", "trainer.json"))).RootElement;
        Assert.Equal(0.25, state.GetProperty("captions").GetProperty("bare").GetDouble());

        TrainSampleEndToEndTests.AssertOneLineError([.. fineTune, "--overwrite", "--text-layers", "2"], "--text-layers cannot be given with --init-from");
        TrainSampleEndToEndTests.AssertOneLineError([.. fineTune[..^4], "--init-from", vae, "--overwrite"], "has no unet/ folder");
        TrainSampleEndToEndTests.AssertOneLineError([.. fineTune[..^2], "--overwrite", "--bare-captions", "2"], "must be in [0, 1], got 2");
    }

    [Fact]
    public void A_vae_whose_latents_the_unet_cannot_halve_is_one_error_line()
    {
        using var dir = new TempDir();
        string vae = Vae(dir.Path, sampleSize: 28);                          // 28 → 14×14 latents; three levels need a multiple of 4
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(vae, Path.Combine(dir.Path, "r"), 1, "--block-out-channels", "32,32,32",
            "--down-block-types", "CrossAttnDownBlock2D,DownBlock2D,DownBlock2D"), "cannot halve 2 times");
    }

    [Fact]
    public void Caption_files_that_are_empty_or_short_are_one_error_line()
    {
        using var dir = new TempDir();
        string vae = Vae(dir.Path), empty = Path.Combine(dir.Path, "empty.txt"), shortFile = Path.Combine(dir.Path, "short.txt");
        File.WriteAllText(empty, "\n\n");
        File.WriteAllText(shortFile, "a bag\na coat\n");
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(vae, Path.Combine(dir.Path, "r1"), 1, "--captions", empty), "empty.txt is empty");
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(vae, Path.Combine(dir.Path, "r2"), 1, "--captions", shortFile), "has 2 captions, the data has 40");
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(vae, Path.Combine(dir.Path, "r3"), 1, "--captions", Path.Combine(dir.Path, "none.txt")), "caption file not found");
    }

    [Theory]
    [InlineData(new[] { "--prediction-type", "x0" }, "--prediction-type must be epsilon, v_prediction or sample")]
    [InlineData(new[] { "--block-out-channels", "32,48" }, "48 is not a positive multiple of 32")]
    [InlineData(new[] { "--down-block-types", "CrossAttnDownBlock2D" }, "--down-block-types has 1 entries")]
    [InlineData(new[] { "--text-width", "15" }, "hidden_size 15 is not divisible by num_attention_heads 2")]
    [InlineData(new[] { "--vae", "/nonexistent/vae" }, "/nonexistent/vae")]
    [InlineData(new[] { "--resume", "--overwrite" }, "exclude each other")]
    public void Bad_flags_are_one_error_line(string[] extra, string expected)
    {
        using var dir = new TempDir();
        string vae = Vae(dir.Path);
        TrainSampleEndToEndTests.AssertOneLineError(Tiny(vae, Path.Combine(dir.Path, "r"), 1, extra), expected);
    }
}

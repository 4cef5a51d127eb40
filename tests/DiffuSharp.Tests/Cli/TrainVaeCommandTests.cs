// diffusharp train-vae / eval-vae end to end on a tiny VAE: the run writes a checkpoint, a diffusers vae/ folder
// that ComponentLoader loads (with a measured scaling_factor), a log and a grid; --resume continues; a second run
// into the same folder is refused; bad flags are one error line; eval-vae prints the PSNR.
using System.Text.Json;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class TrainVaeCommandTests
{
    static string[] Tiny(string outDir, int steps) =>
    [
        "train-vae", "--out", outDir, "--steps", steps.ToString(), "--batch_size", "4", "--max_train", "64", "--block_out_channels", "8,8",
        "--norm_num_groups", "4", "--latent_channels", "2", "--log_interval", "1", "--save_interval", "2", "--sample_interval", "3", "--warmup", "1",
    ];

    [Fact]
    public void Trains_writes_a_loadable_vae_folder_resumes_and_evaluates()
    {
        using var dir = new TempDir();
        string run = Path.Combine(dir.Path, "run");
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(Tiny(run, 3));
        Assert.True(code == 0, stderr);
        Assert.Contains("32×32 → 2×16×16 latents, 64 training images", stdout);
        Assert.Contains("step 3/3: loss", stdout);
        var vae = ComponentLoader.LoadAutoencoderKL(Path.Combine(run, "vae"));
        Assert.Equal([8, 8], vae.Config.BlockOutChannels);
        Assert.True(vae.ScalingFactor > 0 && vae.ScalingFactor != 0.18215, $"scaling_factor {vae.ScalingFactor}");
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
        Assert.True(File.Exists(Path.Combine(run, "samples", "step_0000003.png")));

        var again = TrainSampleEndToEndTests.Cli(Tiny(run, 3));
        Assert.Equal(2, again.Code);
        Assert.Contains("already holds a run", again.Stderr);

        TrainSampleEndToEndTests.AssertOneLineError(["train-vae", "--out", run, "--resume", "--lr", "0.1"], "--lr cannot change on --resume");
        TrainSampleEndToEndTests.AssertOneLineError(["train-vae", "--out", run, "--resume", "--steps", "4"], "trained on 64 images, this data has 60000");
        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["train-vae", "--out", run, "--resume", "--steps", "4", "--max_train", "64"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("resumed", stdout);
        Assert.Contains("at step 3", stdout);
        Assert.Contains("step 4/4", stdout);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);

        (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["eval-vae", "--vae", Path.Combine(run, "vae"), "--n", "20", "--fd-n", "0", "--json"]);
        Assert.True(code == 0, stderr);
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal("psnr_db", rows[0].GetProperty("name").GetString());
        double psnr = rows[0].GetProperty("value").GetDouble();
        Assert.True(psnr > 0 && psnr < 60, $"psnr {psnr}");
    }

    [Theory]
    [InlineData(new[] { "--loss", "l3" }, "--loss must be l1 or l2")]
    [InlineData(new[] { "--block_out_channels", "8,10" }, "--block-out-channels 10 is not a positive multiple of --norm-num-groups 4")]
    [InlineData(new[] { "--pad", "1", "--block_out_channels", "8,8,8" }, "padded size 30 is not a multiple of the downsampling factor 4")]
    [InlineData(new[] { "--data", "/nonexistent/fm" }, "/nonexistent/fm")]
    [InlineData(new[] { "--resume", "--overwrite" }, "exclude each other")]
    [InlineData(new[] { "--freeze-encoder" }, "--freeze-encoder needs --init-from")]
    [InlineData(new[] { "--init-from", "/nonexistent/vae" }, "/nonexistent/vae")]
    public void Bad_flags_are_one_error_line(string[] extra, string expected)
    {
        using var dir = new TempDir();
        TrainSampleEndToEndTests.AssertOneLineError(["train-vae", "--out", Path.Combine(dir.Path, "r"), "--steps", "1", "--norm_num_groups", "4", .. extra], expected);
    }

    [Fact]
    public void Resume_without_a_checkpoint_and_eval_of_a_missing_folder_are_one_error_line()
    {
        using var dir = new TempDir();
        TrainSampleEndToEndTests.AssertOneLineError(["train-vae", "--out", dir.Path, "--resume"], "no checkpoint to resume from");
        TrainSampleEndToEndTests.AssertOneLineError(["eval-vae", "--vae", Path.Combine(dir.Path, "nope")], "component folder not found");
    }
}

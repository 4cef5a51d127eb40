// `train` never loses or poisons work: an existing run is refused without --resume (bytes unchanged) unless
// --overwrite; a changed training flag on --resume is refused by name; a finished run whose model/ is gone (killed
// between the last checkpoint and model/) gets the same bytes back on --resume; a diverging run (--lr 1e3) exits
// non-zero naming its step, and its last good checkpoint still samples. A tiny 8×8 UNet on 16 synthetic PNGs.
using System.Security.Cryptography;
using DiffuSharp.Imaging;
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class TrainSafetyTests
{
    internal static string[] Tiny(string dir, string run, string lr = "1e-3") =>
        ["--preset", "tiny", "--image_size", "8", "--diffusion_steps", "50", "--data", "folder:" + Pngs(dir), "--batch_size", "4",
         "--lr", lr, "--ema_rate", "0.9", "--log_interval", "1", "--out", run];

    [Fact]
    public void Train_into_an_existing_run_without_resume_is_refused_and_leaves_it_byte_for_byte()
    {
        string dir = TrainingFixtures.TempFolder("existing");
        try
        {
            string run = Path.Combine(dir, "run");
            var (code, _, stderr) = Run(["train", "--steps", "2", .. Tiny(dir, run)]);
            Assert.True(code == 0, stderr);
            var before = Tree(run);
            TrainSampleEndToEndTests.AssertOneLineError(["train", "--steps", "3", .. Tiny(dir, run)], "--overwrite");
            Assert.Equal(before, Tree(run));

            // A run killed before its first checkpoint left only a log: still a run, still refused.
            string early = Path.Combine(dir, "early");
            Directory.CreateDirectory(early);
            File.WriteAllText(Path.Combine(early, Trainer.LogFile), "{\"step\": 1, \"loss\": 1}\n");
            TrainSampleEndToEndTests.AssertOneLineError(["train", "--steps", "1", .. Tiny(dir, early)], "already holds a training run");

            (code, _, stderr) = Run(["train", "--steps", "1", "--overwrite", .. Tiny(dir, run)]);
            Assert.True(code == 0, stderr);
            Assert.Single(File.ReadAllLines(Path.Combine(run, Trainer.LogFile)));
            Assert.Contains("\"step\": 1", File.ReadAllText(Path.Combine(run, "checkpoint", "trainer.json")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Resume_refuses_a_changed_training_flag_by_name()
    {
        string dir = TrainingFixtures.TempFolder("changed");
        try
        {
            string run = Path.Combine(dir, "run");
            Assert.Equal(0, Run(["train", "--steps", "1", .. Tiny(dir, run)]).Code);
            TrainSampleEndToEndTests.AssertOneLineError(["train", "--resume", "--steps", "2", "--lr", "5e-3", "--out", run], "--lr 0.005 differs from the checkpoint's 0.001");
            TrainSampleEndToEndTests.AssertOneLineError(["train", "--resume", "--steps", "2", "--batch_size", "2", "--out", run], "--batch-size");
            Assert.Equal(0, Run(["train", "--resume", "--steps", "2", "--lr", "1e-3", "--out", run]).Code);   // the same value is fine
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_finished_run_whose_model_folder_is_missing_gets_the_same_bytes_back_on_resume()
    {
        string dir = TrainingFixtures.TempFolder("model-back");
        try
        {
            string run = Path.Combine(dir, "run"), model = Path.Combine(run, "model");
            Assert.Equal(0, Run(["train", "--steps", "3", "--save_interval", "2", .. Tiny(dir, run)]).Code);
            var uninterrupted = Tree(model);

            Directory.Delete(model, recursive: true);                          // killed after the checkpoint, before model/
            var (code, stdout, stderr) = Run(["train", "--resume", "--out", run]);
            Assert.True(code == 0, stderr);
            Assert.Contains("model folder", stdout);
            Assert.Equal(uninterrupted, Tree(model));

            File.Delete(Path.Combine(model, "model.json"));                    // an older, non-atomic write's half model/
            Assert.Equal(0, Run(["train", "--resume", "--out", run]).Code);
            Assert.Equal(uninterrupted, Tree(model));

            // With model/ complete, a resume at --steps is refused as before.
            TrainSampleEndToEndTests.AssertOneLineError(["train", "--resume", "--out", run], "already at --steps 3");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_diverging_run_exits_non_zero_naming_the_step_and_its_last_checkpoint_still_samples()
    {
        string dir = TrainingFixtures.TempFolder("diverge-cli");
        try
        {
            string run = Path.Combine(dir, "run");
            var (code, _, stderr) = Run(["train", "--steps", "60", "--save_interval", "1", .. Tiny(dir, run, lr: "1e3")]);
            Assert.Equal(1, code);
            var line = Assert.Single(stderr.TrimEnd().Split('\n'));
            var m = System.Text.RegularExpressions.Regex.Match(line, @"^error: train: step (\d+): the (loss|gradient norm) is (NaN|\+inf|-inf)");
            Assert.True(m.Success, line);
            long step = long.Parse(m.Groups[1].Value);
            Assert.Contains("--skip-nonfinite", line);
            Assert.Contains($"\"step\": {step - 1},", File.ReadAllText(Path.Combine(run, "checkpoint", "trainer.json")));
            Assert.False(Directory.Exists(Path.Combine(run, "model")));

            string grid = Path.Combine(dir, "g.png"), npy = Path.Combine(dir, "g.npy");
            // The checkpoint loads as a model folder (finite weights). Weights that lr 1e3 has blown up may still overflow
            // in a forward pass: then sample says so instead of writing black images.
            Assert.Equal(-1, Finite.FirstNonFinite(DiffuSharp.Models.ModelFolder.Load(Path.Combine(run, "checkpoint")).Model.Parameters().SelectMany(p => p.ToArray()).ToArray()));
            (code, _, stderr) = Run(["sample", "--model", Path.Combine(run, "checkpoint"), "--n", "2", "--steps", "2", "--out", grid, "--save-npy", npy]);
            if (code == 0) Assert.All(DiffuSharp.IO.Npy.ReadFloat32(npy).Data, v => Assert.True(float.IsFinite(v)));
            else
            {
                Assert.Matches(@"^error: sample 0 holds (NaN|\+inf|-inf) at .*not finite, no image written$", Assert.Single(stderr.TrimEnd().Split('\n')));
                Assert.False(File.Exists(grid) || File.Exists(npy));
            }

            string skip = Path.Combine(dir, "skip");
            (code, var stdout, stderr) = Run(["train", "--steps", "60", .. Tiny(dir, skip, lr: "1e3"), "--skip_nonfinite"]);
            Assert.True(code == 0, stderr);
            Assert.Matches(@"skipped \d+ steps", stdout);
            Assert.Contains("\"skipped\":", File.ReadAllText(Path.Combine(skip, Trainer.LogFile)));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static (int Code, string Stdout, string Stderr) Run(string[] args) => TrainSampleEndToEndTests.Cli(args);

    /// <summary>Every file under folder (relative path → SHA-256).</summary>
    internal static SortedDictionary<string, string> Tree(string folder)
        => new(Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))), StringComparer.Ordinal);

    /// <summary>16 smooth 8×8 gray PNGs in dir/pngs (written once).</summary>
    internal static string Pngs(string dir)
    {
        string folder = Path.Combine(dir, "pngs");
        if (Directory.Exists(folder)) return folder;
        Directory.CreateDirectory(folder);
        var data = TrainingFixtures.Synthetic(count: 16);
        for (int i = 0; i < data.Count; i++)
        {
            var px = new byte[64];
            for (int p = 0; p < 64; p++) px[p] = (byte)Math.Clamp(Math.Round((data.Images[i * 64 + p] + 1) * 127.5), 0, 255);
            Png.Write(Path.Combine(folder, $"{i:D2}.png"), new Image8(8, 8, 1, px));
        }
        return folder;
    }
}

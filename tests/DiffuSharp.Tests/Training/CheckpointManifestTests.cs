// A checkpoint's manifest.json (sizes + SHA-256 of every file, copies of the model flags and training config) is
// checked before a resume reads anything: a flipped byte or a truncated file is refused naming the file, an edited
// model.json or trainer.json config naming the key. RunFolder.Tidy repairs what a kill during the folder swap
// leaves, and a half-deleted old set never looks complete.
using System.Text.RegularExpressions;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

[Collection("Parallelism")]
public sealed class CheckpointManifestTests
{
    static TrainConfig Config(string dir) => new(BatchSize: 4, Lr: 1e-3, EmaRate: "0.9", TotalSteps: 4, Seed: 2, SaveInterval: 0, OutputFolder: dir);

    static string Saved(string dir)
    {
        var t = new Trainer(TrainingFixtures.TinyModel(), Config(dir), TrainingFixtures.Synthetic());
        t.Step();
        return Checkpoint.Save(t, dir);
    }

    static InvalidDataException LoadFails(string folder)
        => Assert.Throws<InvalidDataException>(() => Checkpoint.Load(folder, TrainingFixtures.Synthetic()));

    [Fact]
    public void A_flipped_byte_or_a_truncated_file_is_refused_naming_the_file()
    {
        string dir = TrainingFixtures.TempFolder("manifest");
        try
        {
            string ckpt = Saved(dir);
            Assert.True(File.Exists(Path.Combine(ckpt, CheckpointManifest.FileName)));
            Assert.Equal(1, Checkpoint.Load(ckpt, TrainingFixtures.Synthetic()).StepCount);

            string ema = Path.Combine(ckpt, Checkpoint.EmaFileName(0.9));
            var bytes = File.ReadAllBytes(ema);
            bytes[^5] ^= 0x10;                                                 // one bit of one weight
            File.WriteAllBytes(ema, bytes);
            var e = LoadFails(ckpt);
            Assert.Contains(ema, e.Message);
            Assert.Contains("SHA-256", e.Message);
            bytes[^5] ^= 0x10;
            File.WriteAllBytes(ema, bytes);

            string opt = Path.Combine(ckpt, "optimizer.safetensors");
            File.WriteAllBytes(opt, File.ReadAllBytes(opt)[..^4]);
            e = LoadFails(ckpt);
            Assert.Contains(opt, e.Message);
            Assert.Contains("truncated", e.Message);
            Assert.Contains("optimizer.safetensors", Assert.Throws<InvalidDataException>(() => Checkpoint.ReadConfig(ckpt)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void An_edited_model_json_or_training_config_is_refused_naming_the_key()
    {
        string dir = TrainingFixtures.TempFolder("manifest-keys");
        try
        {
            string ckpt = Saved(dir);
            string modelJson = Path.Combine(ckpt, "model.json"), trainerJson = Path.Combine(ckpt, "trainer.json");
            string original = File.ReadAllText(modelJson);
            File.WriteAllText(modelJson, Regex.Replace(original, "\"num_channels\": 32", "\"num_channels\": 64"));
            var e = LoadFails(ckpt);
            Assert.Contains(modelJson, e.Message);
            Assert.Contains("\"num_channels\" (32 → 64)", e.Message);
            File.WriteAllText(modelJson, original);

            File.WriteAllText(trainerJson, Regex.Replace(File.ReadAllText(trainerJson), "\"lr\": 0.001", "\"lr\": 0.01"));
            e = LoadFails(ckpt);
            Assert.True(e.Message.Contains("\"lr\" (0.001 → 0.01)"), e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_checkpoint_without_a_manifest_from_before_manifests_still_loads()
    {
        string dir = TrainingFixtures.TempFolder("manifest-legacy");
        try
        {
            string ckpt = Saved(dir);
            File.Delete(Path.Combine(ckpt, CheckpointManifest.FileName));
            Assert.Equal(1, Checkpoint.Load(ckpt, TrainingFixtures.Synthetic()).StepCount);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Tidy_puts_back_the_set_of_a_kill_between_the_renames_and_removes_stale_and_half_deleted_folders()
    {
        string dir = TrainingFixtures.TempFolder("tidy");
        try
        {
            string ckpt = Saved(dir);
            var good = NonFiniteTests.Snapshot(ckpt);
            // Killed between the two renames of a save: checkpoint/ is gone, the set is checkpoint.old-*; a newer
            // set's tmp folder is half written; an older old-* was half deleted (markers first: incomplete).
            Directory.Move(ckpt, Path.Combine(dir, "checkpoint.old-aaaa"));
            Directory.CreateDirectory(Path.Combine(dir, "checkpoint.tmp-bbbb"));
            File.WriteAllText(Path.Combine(dir, "checkpoint.tmp-bbbb", "model.safetensors"), "partial");
            string halfDeleted = Path.Combine(dir, "checkpoint.old-cccc");
            Directory.CreateDirectory(halfDeleted);
            foreach (var f in Directory.GetFiles(Path.Combine(dir, "checkpoint.old-aaaa")))
                if (Path.GetFileName(f) is not ("trainer.json" or "manifest.json")) File.Copy(f, Path.Combine(halfDeleted, Path.GetFileName(f)));
            File.SetLastWriteTimeUtc(Path.Combine(halfDeleted, "model.json"), DateTime.UtcNow.AddHours(1));
            Directory.CreateDirectory(Path.Combine(dir, "model.tmp-dddd"));
            File.WriteAllText(Path.Combine(dir, "log.jsonl.tmp-eeee"), "torn");

            Assert.Equal(Path.Combine(dir, "checkpoint.old-aaaa"), Checkpoint.Locate(dir));   // never the half-deleted one
            var removed = RunFolder.Tidy(dir);
            Assert.Equal(["checkpoint"], Directory.GetDirectories(dir).Select(d => Path.GetFileName(d)!).ToArray());
            Assert.Empty(Directory.GetFiles(dir));
            Assert.Equal(4, removed.Count);
            Assert.Equal(good, NonFiniteTests.Snapshot(Path.Combine(dir, "checkpoint")));
            Assert.Equal(1, Checkpoint.Load(Checkpoint.Locate(dir), TrainingFixtures.Synthetic()).StepCount);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

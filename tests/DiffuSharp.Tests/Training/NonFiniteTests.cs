// A diverging run (lr 1e3) must stop at its first non-finite step, naming it, before anything of that step reaches
// the weights, and must never write non-finite state over a good checkpoint; under SkipNonFinite such steps are
// skipped and counted in the log. improved-diffusion logs NaN and carries on, which is the defect guarded here.
using System.Text.Json.Nodes;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

[Collection("Parallelism")]
public sealed class NonFiniteTests
{
    static TrainConfig Diverging(string outFolder, int saveInterval = 1) => new(
        BatchSize: 4, Lr: 1e3, EmaRate: "0.9", TotalSteps: 60, Seed: 5, LogInterval: 1, SaveInterval: saveInterval, OutputFolder: outFolder);

    [Fact]
    public void A_diverging_run_stops_at_the_first_non_finite_step_and_keeps_the_last_good_checkpoint()
    {
        string dir = TrainingFixtures.TempFolder("diverge");
        try
        {
            var data = TrainingFixtures.Synthetic();
            var t = new Trainer(TrainingFixtures.TinyModel(), Diverging(dir), data);
            var e = Assert.Throws<NonFiniteTrainingException>(() => t.Run());
            Assert.True(e.Step > 1 && e.Step < 60, $"diverged at step {e.Step}");
            Assert.Contains($"step {e.Step}:", e.Message);
            Assert.Contains("not finite", e.Message.Replace("NaN", "not finite").Replace("inf", "not finite"));
            Assert.Equal(e.Step - 1, t.StepCount);                           // the bad step was not taken
            Assert.Equal(-1, Finite.FirstNonFinite(t.Flat.Values));

            // The checkpoint is the last good step's, complete, finite and loadable; no model/ was written.
            var resumed = Checkpoint.Load(Checkpoint.Locate(dir), data);
            Assert.Equal(e.Step - 1, resumed.StepCount);
            Assert.Equal(-1, Finite.FirstNonFinite(resumed.Flat.Values));
            Assert.Equal(-1, Finite.FirstNonFinite(resumed.Emas[0].Shadow[0].ToArray()));
            Assert.False(Directory.Exists(Path.Combine(dir, "model")));
            Assert.Contains($"(step {e.Step - 1})", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Skip_non_finite_skips_and_counts_the_bad_steps_and_saves_only_finite_state()
    {
        string dir = TrainingFixtures.TempFolder("diverge-skip");
        try
        {
            var t = new Trainer(TrainingFixtures.TinyModel(), Diverging(dir, saveInterval: 0), TrainingFixtures.Synthetic()) { SkipNonFinite = true };
            Assert.True(t.Run());
            Assert.Equal(60, t.StepCount);
            Assert.True(t.SkippedSteps > 0);
            var log = File.ReadAllLines(Path.Combine(dir, Trainer.LogFile)).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(t.SkippedSteps, log.Sum(r => r["skipped"]?.GetValue<int>() ?? 0));
            Assert.Equal(-1, Finite.FirstNonFinite(t.Flat.Values));
            Assert.True(Directory.Exists(Path.Combine(dir, "model")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Save_refuses_non_finite_state_and_leaves_the_previous_checkpoint_byte_for_byte()
    {
        string dir = TrainingFixtures.TempFolder("nan-save");
        try
        {
            var t = new Trainer(TrainingFixtures.TinyModel(), Diverging(dir) with { Lr = 1e-3 }, TrainingFixtures.Synthetic());
            t.Step();
            Checkpoint.Save(t, dir);
            var before = Snapshot(Path.Combine(dir, Checkpoint.FolderName));

            t.Step();
            t.Flat.Values[7] = float.NaN;
            var e = Assert.Throws<NonFiniteTrainingException>(() => Checkpoint.Save(t, dir));
            string first = t.Model.NamedParameters().First().Name;
            Assert.Contains($"'{first}'", e.Message);
            t.Flat.Values[7] = 0;
            t.Emas[0].Shadow[0].Data[3] = float.PositiveInfinity;
            Assert.Contains("EMA", Assert.Throws<NonFiniteTrainingException>(() => Checkpoint.Save(t, dir)).Message);
            Assert.Throws<NonFiniteTrainingException>(() => t.SaveModelFolder(Path.Combine(dir, "model")));   // model/ holds the EMA

            Assert.Equal(before, Snapshot(Path.Combine(dir, Checkpoint.FolderName)));
            Assert.Single(Directory.GetDirectories(dir));
            Assert.False(Directory.Exists(Path.Combine(dir, "model")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void SaveEvery_saves_by_wall_time_whatever_save_interval_is()
    {
        string dir = TrainingFixtures.TempFolder("save-every");
        try
        {
            string state = Path.Combine(dir, Checkpoint.FolderName, "trainer.json");
            var seen = new List<bool>();
            var t = new Trainer(TrainingFixtures.TinyModel(), Diverging(dir, saveInterval: 0) with { Lr = 1e-3, TotalSteps = 3 }, TrainingFixtures.Synthetic());
            t.Run(onStep: _ => seen.Add(File.Exists(state)));
            Assert.Equal([false, false, false], seen);                         // save_interval 0: only at the end

            RunFolder.Clear(dir);
            seen.Clear();
            t = new Trainer(TrainingFixtures.TinyModel(), Diverging(dir, saveInterval: 0) with { Lr = 1e-3, TotalSteps = 3 }, TrainingFixtures.Synthetic())
                { SaveEvery = TimeSpan.FromTicks(1) };
            t.Run(onStep: s => seen.Add(File.Exists(state) && File.ReadAllText(state).Contains($"\"step\": {s.Step - 1},")));
            Assert.Equal([false, true, true], seen);                           // step k sees step k−1's checkpoint
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    internal static Dictionary<string, string> Snapshot(string folder)
        => Directory.GetFiles(folder).ToDictionary(f => Path.GetFileName(f)!, f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))));
}

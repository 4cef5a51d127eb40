// log.jsonl after a resume reads as one continuous run: a checkpoint older than the last log lines (the process
// died after logging steps it never checkpointed) replays those steps, and their old lines are dropped, not
// duplicated. A fresh run into the same folder starts a fresh log.
using System.Text.Json.Nodes;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

[Collection("Parallelism")]
public sealed class LogResumeTests
{
    static TrainConfig Config(string outFolder, long steps) => new(
        BatchSize: 4, Lr: 1e-3, EmaRate: "0.9", TotalSteps: steps, Seed: 3, LogInterval: 1, SaveInterval: 0, OutputFolder: outFolder);

    static long[] LoggedSteps(string dir)
        => File.ReadAllLines(Path.Combine(dir, Trainer.LogFile)).Select(l => JsonNode.Parse(l)!["step"]!.GetValue<long>()).ToArray();

    [Fact]
    public void Resuming_from_an_older_checkpoint_drops_the_replayed_log_lines()
    {
        var model = TrainingFixtures.TinyModel();
        var data = TrainingFixtures.Synthetic();
        string dir = TrainingFixtures.TempFolder("logresume");
        try
        {
            Assert.True(new Trainer(model, Config(dir, 2), data).Run());               // steps 1, 2; checkpoint at 2
            string saved = Path.Combine(dir, "checkpoint-at-2");
            CopyFolder(Path.Combine(dir, Checkpoint.FolderName), saved);
            Assert.True(Checkpoint.Load(Checkpoint.Locate(dir), data, c => c with { TotalSteps = 4 }).Run());
            Assert.Equal([1L, 2, 3, 4], LoggedSteps(dir));
            var lossAt3 = File.ReadAllLines(Path.Combine(dir, Trainer.LogFile))[2];

            // The process "died" after logging steps 3 and 4 but before their checkpoint: only step 2's is left.
            Directory.Delete(Path.Combine(dir, Checkpoint.FolderName), recursive: true);
            Directory.Move(saved, Path.Combine(dir, Checkpoint.FolderName));
            File.AppendAllText(Path.Combine(dir, Trainer.LogFile), "{\"step\": 5, \"loss\": 0.");   // and a torn last line
            var resumed = Checkpoint.Load(Checkpoint.Locate(dir), data, c => c with { TotalSteps = 5 });
            Assert.Equal(2, resumed.StepCount);
            Assert.True(resumed.Run());
            Assert.Equal([1L, 2, 3, 4, 5], LoggedSteps(dir));
            // The replay is bit-exact, so step 3's loss is logged again with the same value.
            var line3 = File.ReadAllLines(Path.Combine(dir, Trainer.LogFile))[2];
            Assert.Equal(JsonNode.Parse(lossAt3)!["loss"]!.GetValue<double>(), JsonNode.Parse(line3)!["loss"]!.GetValue<double>());

            // A fresh run in the same folder starts a new log.
            Assert.True(new Trainer(model, Config(dir, 1), data).Run());
            Assert.Equal([1L], LoggedSteps(dir));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}

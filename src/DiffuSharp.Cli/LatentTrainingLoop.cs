// The run loop of train-latent and train-controlnet: steps until the budget is spent or SIGINT/SIGTERM asks to stop
// (the step under way finishes, then a checkpoint: exit code 130 or 143), a progress bar with the loss, a log.jsonl
// line every LogInterval steps (means over the interval), a checkpoint every SaveInterval steps or SaveMinutes, a
// sample grid every SampleInterval steps, and a last checkpoint at the end.
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

/// <summary>What the loop needs of a latent trainer (LatentTrainer, ControlNetTrainer) and its command.</summary>
/// <param name="Config">the run's configuration (budget and intervals)</param>
/// <param name="StepCount">the steps taken so far</param>
/// <param name="Step">one optimisation step</param>
/// <param name="Epoch">the epoch the next batch comes from</param>
/// <param name="Save">writes the checkpoint and the model folder</param>
/// <param name="WriteGrid">writes a sample grid</param>
/// <param name="Wrote">what Save writes, for the closing line</param>
sealed record LatentRun(TrainConfig Config, Func<long> StepCount, Func<LatentStepStats> Step, Func<int> Epoch, Action Save, Action WriteGrid, string Wrote);

static class LatentTrainingLoop
{
    /// <summary>Runs <paramref name="run"/> to its budget or a signal; returns 0, 130 (SIGINT) or 143 (SIGTERM).</summary>
    public static int Run(LatentRun run, string outFolder, double saveMinutes, TextWriter stdout)
    {
        var config = run.Config;
        int signal = 0;
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; signal = 130; });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; signal = 143; });
        string logPath = Path.Combine(outFolder, Trainer.LogFile);
        var sinceSave = System.Diagnostics.Stopwatch.StartNew();
        var current = ProgressOutput.Current;
        var output = current.Console is not null ? current : new ProgressOutput(Lines: stdout);
        double lossSum = 0, mseSum = 0, secs = 0, ema = double.NaN;
        int n = 0;
        using (var bar = ProgressBar.Start(output, "", config.TotalSteps, run.StepCount(), LineMode.Manual))
            while (run.StepCount() < config.TotalSteps && signal == 0)
            {
                var s = run.Step();
                (lossSum, mseSum, secs, n) = (lossSum + s.Loss, mseSum + s.Mse, secs + s.Seconds, n + 1);
                ema = double.IsNaN(ema) ? s.Loss : 0.95 * ema + 0.05 * s.Loss;
                bar.Set(s.Step, string.Create(CultureInfo.InvariantCulture, $"loss {ema:F4}"));
                if (s.Step % config.LogInterval == 0 || s.Step == config.TotalSteps)
                {
                    var line = new JsonObject
                    {
                        ["step"] = s.Step, ["loss"] = lossSum / n, ["mse"] = mseSum / n, ["lr"] = s.Lr, ["grad_norm"] = s.GradNorm,
                        ["sec_per_step"] = secs / n, ["epoch"] = run.Epoch(),
                    };
                    File.AppendAllText(logPath, line.ToJsonString() + "\n");
                    bar.Set(s.Step, string.Create(CultureInfo.InvariantCulture, $"loss {lossSum / n:F4} mse {mseSum / n:F4} |g| {s.GradNorm:F2}"));
                    bar.WriteLine();
                    (lossSum, mseSum, secs, n) = (0, 0, 0, 0);
                }
                bool timed = saveMinutes > 0 && sinceSave.Elapsed.TotalMinutes >= saveMinutes;
                if ((config.SaveInterval > 0 && s.Step % config.SaveInterval == 0) || timed)
                {
                    run.Save();
                    sinceSave.Restart();
                }
                if (config.SampleInterval > 0 && s.Step % config.SampleInterval == 0) run.WriteGrid();
            }
        run.Save();
        stdout.WriteLine($"step {run.StepCount()}: wrote {Path.Combine(outFolder, Checkpoint.FolderName)} and {run.Wrote}");
        return signal;
    }
}

// Kill and resume, for real: `train` runs as a child process, is stopped by SIGINT once (it must save and exit 130)
// and by SIGTERM once (143), then killed by SIGKILL at seeded random moments — after a random log line, which with --save_interval 1 lands in
// or next to a checkpoint save — and resumed with --resume each time (or started over with --overwrite when it
// died before its first checkpoint) until it finishes. Its model/ must equal, byte for byte, the model/ of the same
// run never interrupted, and no checkpoint.tmp-*/old-* folder may be left.
using System.Diagnostics;
using System.Text;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

[Collection(nameof(SerialCollection))]
public sealed class KillResumeTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static string[] Args(string dir, string run, int steps) =>
        ["train", "--steps", steps.ToString(), "--save_interval", "1", .. TrainSafetyTests.Tiny(dir, run)[..^2], "--out", run];

    sealed record Child(Process Process, StringBuilder Stderr);

    static Child Start(IEnumerable<string> args)
    {
        // through env --default-signal=INT: a test run started in the background by a shell without job control
        // inherits SIGINT ignored, and the runtime keeps an ignored SIGINT ignored (as nohup wants)
        var psi = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("--default-signal=INT");
        psi.ArgumentList.Add("dotnet");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "DiffuSharp.Cli.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var err = new StringBuilder();
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (err) err.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        return new Child(p, err);
    }

    /// <summary>Reads log lines until the <paramref name="lines"/>-th, then sends the signal; returns the exit code.</summary>
    static int RunUntil(Child c, int lines, string? signal) => RunUntil(c, lines, signal, out _);

    /// <summary>As above; <paramref name="sent"/> says whether the signal went to a running process (on a loaded machine
    /// a short run can finish before this process has read its first lines).</summary>
    static int RunUntil(Child c, int lines, string? signal, out bool sent)
    {
        int seen = 0;
        sent = false;
        while (signal is not null && seen < lines && c.Process.StandardOutput.ReadLine() is { } line)
            if (line.StartsWith("step ", StringComparison.Ordinal)) seen++;
        if (signal == "KILL" && !c.Process.HasExited) { c.Process.Kill(); sent = true; }
        if (signal is "INT" or "TERM" && !c.Process.HasExited)
        {
            Process.Start("kill", ["-" + signal, c.Process.Id.ToString()])!.WaitForExit();
            sent = true;
        }
        c.Process.StandardOutput.ReadToEnd();
        Assert.True(c.Process.WaitForExit(120_000), "train did not exit");
        return c.Process.ExitCode;
    }

    [Fact]
    public void Sigint_once_and_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_model_bit_for_bit()
    {
        if (OperatingSystem.IsWindows()) return;
        string dir = TrainingFixtures.TempFolder("kill-resume");
        try
        {
            // DIFFUSHARP_KILLS / DIFFUSHARP_KILL_SEED run a longer campaign (RELIABILITY.md); the tests use 5 kills.
            int maxKills = int.TryParse(Environment.GetEnvironmentVariable("DIFFUSHARP_KILLS"), out int k) ? k : 5;
            int steps = Math.Max(24, 5 * maxKills);
            string straight = Path.Combine(dir, "straight"), killed = Path.Combine(dir, "killed");
            var s = Start(Args(dir, straight, steps));
            Assert.True(RunUntil(s, 0, null) == 0, s.Stderr.ToString());
            var expected = TrainSafetyTests.Tree(Path.Combine(straight, "model"));

            // SIGINT after step 1: saves, says so, exits 130 (a run that finished before the signal reached it is started
            // over: on a loaded machine this process can read the log lines late)
            Child c;
            for (int attempt = 0; ; attempt++)
            {
                c = Start(attempt == 0 ? Args(dir, killed, steps) : [.. Args(dir, killed, steps), "--overwrite"]);
                int code = RunUntil(c, 1, "INT", out bool sent);
                if (code == 0 && attempt < 5) continue;         // it finished before the signal came (or before kill ran)
                Assert.True(code == 130, $"exit {code}, signal {(sent ? "sent" : "not sent: the run had ended")}: {c.Stderr}");
                break;
            }
            Assert.True(File.Exists(Path.Combine(killed, "checkpoint", "manifest.json")));
            c = Start(["train", "--resume", "--out", killed]);                 // SIGTERM (a container stop): 143
            Assert.True(RunUntil(c, 2, "TERM") == 143, c.Stderr.ToString());

            var rng = new Random(int.TryParse(Environment.GetEnvironmentVariable("DIFFUSHARP_KILL_SEED"), out int seed) ? seed : 20261207);
            var log = new List<string>();
            int kills = 0, exit = -1;
            for (int attempt = 0; attempt < 4 * maxKills + 20 && exit != 0; attempt++)
            {
                bool hasCheckpoint = Directory.EnumerateDirectories(killed, "checkpoint*").Any();
                string[] args = hasCheckpoint ? ["train", "--resume", "--out", killed] : [.. Args(dir, killed, steps), "--overwrite"];
                c = Start(args);
                bool kill = kills < maxKills;
                int at = rng.Next(1, 6);                                       // 1..5 log lines, each followed by a save
                exit = RunUntil(c, at, kill ? "KILL" : null);
                log.Add($"{(hasCheckpoint ? "resume" : "fresh")}{(kill ? $", SIGKILL after {at} log lines" : "")}: exit {exit}");
                if (kill && exit != 0) kills++;
                else if (exit != 0 && c.Stderr.ToString().Contains("already at --steps")) exit = 0;   // finished just before the kill
                else Assert.True(exit == 0, string.Join("; ", log) + " | " + c.Stderr);
            }
            Assert.True(exit == 0, string.Join("; ", log));
            output.WriteLine(string.Join("\n", log));
            output.WriteLine($"{kills} SIGKILLs, {log.Count} starts after the SIGINT, model/ bit-exact");
            Assert.Equal(expected, TrainSafetyTests.Tree(Path.Combine(killed, "model")));
            Assert.Equal(["checkpoint", "model"], Directory.GetDirectories(killed).Select(d => Path.GetFileName(d)!).Where(n => n != "samples").Order().ToArray());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

// Data-parallel training over Open MPI on loopback (mpirun -n 2 --mca btl tcp,self), against the single process:
// (1) two ranks with batch B give, bit for bit, the weights, EMA, optimizer moments, logged losses and final RNG states
// of one process with batch 2B in two microbatches of B, over 20 steps with dropout on (so the dropout, noise and
// timestep streams must be split across ranks exactly as the microbatches draw them), and again for a
// class-conditional model with class dropout to the null label and offset noise (the labels stream, and ε's extra
// offsets); (2) a resume on two ranks equals the uninterrupted run bit for bit, and the checkpoint continues on one
// rank and on two again; (3) an exception or a non-finite loss on one rank ends the job with one error line naming
// the rank (exit 1, the last checkpoint finite), and under --skip_nonfinite every rank skips the same steps;
// (4) killing one rank ends the job within seconds with mpirun's message naming that rank, the last checkpoint
// loads, and --resume continues on two ranks. Both run the command-line program as child processes; they are
// skipped, saying why, when mpirun is not installed (.ci/run installs openmpi-bin and libopenmpi-dev).
using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Distributed;

public sealed class MpiTrainingTests
{
    static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "DiffuSharp.Cli.dll");

    static string[] Common(string data, string outFolder) =>
    [
        "train", "--preset", "tiny", "--image_size", "8", "--channel_mult", "1,2", "--num_channels", "32", "--dropout", "0.1",
        "--diffusion_steps", "50", "--data", data, "--lr", "1e-3", "--ema_rate", "0.9", "--seed", "11", "--log_interval", "1",
        "--out", outFolder,
    ];

    [MpirunFact]
    public void Two_ranks_with_batch_B_equal_one_process_with_batch_2B_in_two_microbatches()
    {
        string dir = TrainingFixtures.TempFolder("mpi-same");
        try { AssertSameResult(dir, "folder:" + WritePngs(dir, 24), []); }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The same with the objectives' own draws: class dropout to the null label (one uniform per label from
    /// the "labels" Rng) and offset noise (B·C more normals after ε), each rank skipping exactly what the other draws.</summary>
    [MpirunFact]
    public void Two_ranks_equal_one_process_with_class_dropout_and_offset_noise()
    {
        string dir = TrainingFixtures.TempFolder("mpi-same-cfg");
        try
        {
            AssertSameResult(dir, "idx:" + WriteIdx(dir, 24),
                ["--class_cond", "true", "--class_dropout_prob", "0.3", "--noise_offset", "0.1", "--snr_gamma", "5"]);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static void AssertSameResult(string dir, string data, string[] extra)
    {
        string single = Path.Combine(dir, "single"), ranks = Path.Combine(dir, "ranks");
        var one = Run(Dotnet, [Cli, .. Common(data, single), .. extra, "--steps", "20", "--batch_size", "8", "--microbatch", "4"], TimeSpan.FromMinutes(3));
        Assert.True(one.Code == 0, one.Output);
        var two = Run(Mpirun, [.. MpirunArgs(2), Dotnet, Cli, .. Common(data, ranks), .. extra, "--steps", "20", "--batch_size", "4"], TimeSpan.FromMinutes(3));
        Assert.True(two.Code == 0, two.Output);
        Assert.Contains("2 ranks, global batch 8", two.Output);

        foreach (string file in new[] { "model.safetensors", "ema_0.9.safetensors", "optimizer.safetensors" })
        {
            var a = SafeTensorsFile.Open(Path.Combine(single, "checkpoint", file));
            var b = SafeTensorsFile.Open(Path.Combine(ranks, "checkpoint", file));
            Assert.Equal(a.Names.Order(), b.Names.Order());
            foreach (string name in a.Names)
                Assert.True(a.ReadFloat32(name).AsSpan().SequenceEqual(b.ReadFloat32(name)), $"{file}: {name} differs");
        }
        // Every logged loss, quartile and gradient norm of the 20 steps, as the same doubles.
        var la = File.ReadAllLines(Path.Combine(single, Trainer.LogFile)).Select(Losses).ToArray();
        var lb = File.ReadAllLines(Path.Combine(ranks, Trainer.LogFile)).Select(Losses).ToArray();
        Assert.Equal(20, la.Length);
        Assert.Equal(la, lb);
        // And every stream ends where the single process leaves it (the RNG states, "labels" included, and the data position).
        var sa = JsonNode.Parse(File.ReadAllText(Path.Combine(single, "checkpoint", "trainer.json")))!;
        var sb = JsonNode.Parse(File.ReadAllText(Path.Combine(ranks, "checkpoint", "trainer.json")))!;
        foreach (string key in new[] { "step", "rngs", "data" })
            Assert.Equal(sa[key]!.ToJsonString(), sb[key]!.ToJsonString());
    }

    [MpirunFact]
    public void Resuming_on_the_same_N_is_bit_exact_and_on_another_N_continues()
    {
        string dir = TrainingFixtures.TempFolder("mpi-resume");
        try
        {
            string data = "folder:" + WritePngs(dir, 24);
            string straight = Path.Combine(dir, "straight"), split = Path.Combine(dir, "split");
            string[] two = [.. MpirunArgs(2), Dotnet, Cli];
            // The loss-aware sampler too: its history is gathered from both ranks and must come back on resume.
            string[] common = [.. Common(data, straight), "--batch_size", "4", "--schedule_sampler", "loss-second-moment"];
            var a = Run(Mpirun, [.. two, .. common, "--steps", "12"], TimeSpan.FromMinutes(3));
            Assert.True(a.Code == 0, a.Output);
            common[Array.IndexOf(common, straight)] = split;
            var b = Run(Mpirun, [.. two, .. common, "--steps", "6"], TimeSpan.FromMinutes(3));
            Assert.True(b.Code == 0, b.Output);
            var c = Run(Mpirun, [.. two, "train", "--resume", "--out", split, "--steps", "12"], TimeSpan.FromMinutes(3));
            Assert.True(c.Code == 0, c.Output);
            foreach (string file in new[] { "model.safetensors", "ema_0.9.safetensors", "optimizer.safetensors" })
            {
                var x = SafeTensorsFile.Open(Path.Combine(straight, "checkpoint", file));
                var y = SafeTensorsFile.Open(Path.Combine(split, "checkpoint", file));
                foreach (string name in x.Names)
                    Assert.True(x.ReadFloat32(name).AsSpan().SequenceEqual(y.ReadFloat32(name)), $"{file}: {name} differs after a resume on 2 ranks");
            }
            Assert.Equal(File.ReadAllText(Path.Combine(straight, "checkpoint", "trainer.json")).Replace(straight, "OUT"),
                File.ReadAllText(Path.Combine(split, "checkpoint", "trainer.json")).Replace(split, "OUT"));

            // Another N: the same checkpoint continues in one process (global batch 4), then on two ranks again (8).
            var d = Run(Dotnet, [Cli, "train", "--resume", "--out", split, "--steps", "14"], TimeSpan.FromMinutes(3));
            Assert.True(d.Code == 0, d.Output);
            var e = Run(Mpirun, [.. two, "train", "--resume", "--out", split, "--steps", "16"], TimeSpan.FromMinutes(3));
            Assert.True(e.Code == 0, e.Output);
            Assert.Equal(16, Step(Path.Combine(split, "checkpoint", "trainer.json")));
            var steps = File.ReadAllLines(Path.Combine(split, Trainer.LogFile)).Select(l => JsonNode.Parse(l)!["step"]!.GetValue<long>());
            Assert.Equal(Enumerable.Range(1, 16).Select(i => (long)i), steps);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [MpirunFact]
    public void A_failing_rank_ends_the_job_with_one_line_naming_it()
    {
        string dir = TrainingFixtures.TempFolder("mpi-fail");
        try
        {
            string data = "folder:" + WritePngs(dir, 24), run = Path.Combine(dir, "run");
            string[] args = [.. Common(data, run), "--batch_size", "4", "--steps", "50"];
            // An exception on rank 1 only (its data folder is missing: mpirun's "A : B" gives each rank its own command).
            string[] missing = (string[])args.Clone();
            missing[Array.IndexOf(missing, data)] = "folder:" + Path.Combine(dir, "missing");
            var bad = Run(Mpirun, [.. MpirunArgs(1), Dotnet, Cli, .. args, ":", "-n", "1", Dotnet, Cli, .. missing],
                TimeSpan.FromMinutes(2));
            Assert.NotEqual(0, bad.Code);
            Assert.Contains("error: rank 1 of 2: image folder", bad.Output);
            Assert.DoesNotContain("   at ", bad.Output);

            // A diverging loss: every rank sees it before the update; rank 0 names the rank, the checkpoint of step 1 is kept.
            string[] diverging = (string[])args.Clone();
            diverging[Array.IndexOf(diverging, "--lr") + 1] = "1e30";
            var nan = Run(Mpirun, [.. MpirunArgs(2), Dotnet, Cli, .. diverging, "--save_interval", "1"], TimeSpan.FromMinutes(2));
            Assert.NotEqual(0, nan.Code);
            var stop = Assert.Single(nan.Output.Split('\n'), l => l.StartsWith("error: ", StringComparison.Ordinal));
            var m = Regex.Match(stop, @"^error: train: step (\d+): rank [01] of 2: the (loss of sample \d+ is (NaN|[+-]inf) \(t = \d+\)|gradient is not finite); " +
                @"training stopped before this step changed anything; the last checkpoint \(step (\d+)\) in .* is intact");
            Assert.True(m.Success, nan.Output);
            Assert.Equal(1, nan.Code);
            string folder = Checkpoint.Locate(run);
            long failed = long.Parse(m.Groups[1].Value), kept = long.Parse(m.Groups[4].Value);
            Assert.Equal(failed - 1, kept);                                   // --save_interval 1: the step before it
            Assert.Equal(kept, Step(Path.Combine(folder, "trainer.json")));
            var weights = SafeTensorsFile.Open(Path.Combine(folder, "model.safetensors"));
            Assert.All(weights.Names, n => Assert.All(weights.ReadFloat32(n), v => Assert.True(float.IsFinite(v), $"{n} holds {v}")));

            // Under --skip_nonfinite every rank skips the same steps (agreed at the all-gather), the run completes
            // and rank 0 counts them; its saves stay finite.
            string skipRun = Path.Combine(dir, "skip");
            diverging[Array.IndexOf(diverging, run)] = skipRun;
            diverging[Array.IndexOf(diverging, "--steps") + 1] = (failed + 2).ToString();
            var skip = Run(Mpirun, [.. MpirunArgs(2), Dotnet, Cli, .. diverging, "--skip_nonfinite"], TimeSpan.FromMinutes(2));
            Assert.True(skip.Code == 0, skip.Output);
            Assert.Matches(@"skipped [1-9]\d* steps with a non-finite loss or gradient", skip.Output);
            Assert.Contains(File.ReadAllLines(Path.Combine(skipRun, Trainer.LogFile)), l => JsonNode.Parse(l)!["skipped"] is not null);
            Assert.Equal(failed + 2, Step(Path.Combine(skipRun, "checkpoint", "trainer.json")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [MpirunFact]
    public void Killing_one_rank_ends_the_other_within_seconds_and_the_checkpoint_resumes()
    {
        string dir = TrainingFixtures.TempFolder("mpi-kill");
        try
        {
            string data = "folder:" + WritePngs(dir, 24), run = Path.Combine(dir, "run");
            string[] args = [.. MpirunArgs(2), Dotnet, Cli, .. Common(data, run), "--batch_size", "4", "--save_interval", "5"];
            using var job = Start(Mpirun, [.. args, "--steps", "100000"], out var output);
            string state = Path.Combine(run, "checkpoint", "trainer.json");
            var deadline = Stopwatch.StartNew();
            while (!(File.Exists(state) && Step(state) >= 10))
            {
                if (job.HasExited) Assert.Fail("the job ended before its second checkpoint: " + Text(output));
                if (deadline.Elapsed >= TimeSpan.FromMinutes(3)) Assert.Fail("no checkpoint at step 10 after 3 minutes: " + Text(output));
                Thread.Sleep(100);
            }
            int victim = RankPid(job.Id, rank: 1);
            var clock = Stopwatch.StartNew();
            Process.GetProcessById(victim).Kill();
            Assert.True(job.WaitForExit(TimeSpan.FromSeconds(30)), "the job was still running 30 s after rank 1 was killed");
            job.WaitForExit();                                               // the output is complete
            double seconds = clock.Elapsed.TotalSeconds;
            Assert.True(seconds < 10, $"the job took {seconds:F1} s to end after rank 1 was killed");
            Assert.NotEqual(0, job.ExitCode);
            Assert.Matches(@"rank 1 .*(exited on signal 9|killed)", Text(output));

            // The last checkpoint is whole (a kill mid-save leaves the previous one), and --resume continues on two ranks.
            string folder = Checkpoint.Locate(run);
            long saved = Step(Path.Combine(folder, "trainer.json"));
            Assert.True(saved >= 10 && saved % 5 == 0, $"checkpoint at step {saved}");
            var resumed = Run(Mpirun, [.. MpirunArgs(2), Dotnet, Cli, "train", "--resume", "--out", run, "--steps", (saved + 3).ToString()], TimeSpan.FromMinutes(3));
            Assert.True(resumed.Code == 0, resumed.Output);
            Assert.Equal(saved + 3, Step(state));
            var steps = File.ReadAllLines(Path.Combine(run, Trainer.LogFile)).Select(l => JsonNode.Parse(l)!["step"]!.GetValue<long>()).ToArray();
            Assert.Equal(Enumerable.Range(1, (int)saved + 3).Select(i => (long)i), steps);   // one continuous log
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static double[] Losses(string line)
    {
        var o = JsonNode.Parse(line)!.AsObject();
        return o.Where(kv => kv.Key != "samples_per_sec").Select(kv => kv.Value?.GetValue<double>() ?? double.NaN).ToArray();
    }

    static long Step(string trainerJson) => JsonNode.Parse(File.ReadAllText(trainerJson))!["step"]!.GetValue<long>();

    /// <summary>The pid of the child of mpirun whose environment says it is this rank.</summary>
    static int RankPid(int mpirunPid, int rank)
    {
        string want = $"OMPI_COMM_WORLD_RANK={rank}";
        foreach (var proc in Directory.EnumerateDirectories("/proc").Select(Path.GetFileName))
        {
            if (!int.TryParse(proc, out int pid)) continue;
            try
            {
                string stat = File.ReadAllText($"/proc/{pid}/stat");
                int ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                if (ppid != mpirunPid) continue;
                if (File.ReadAllText($"/proc/{pid}/environ").Split('\0').Contains(want)) return pid;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        throw new InvalidOperationException($"no child of mpirun ({mpirunPid}) is rank {rank}");
    }

    // TCP on the loopback interface (Open MPI leaves lo out by default), for the processes and for mpirun's own wiring.
    static string[] MpirunArgs(int n) =>
        ["-n", n.ToString(), "--oversubscribe", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"];

    static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    internal static string Mpirun => MpirunFactAttribute.Find() ?? "mpirun";

    static Process Start(string file, string[] args, out System.Text.StringBuilder output)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";                   // CI containers run as root
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        psi.Environment.Remove("DIFFUSHARP_DEBUG");
        var sb = new System.Text.StringBuilder();
        var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (sb) sb.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (sb) sb.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        output = sb;
        return p;
    }

    /// <summary>What the process has written so far, read under the lock its output handlers append under (they run on
    /// other threads while the test polls).</summary>
    static string Text(System.Text.StringBuilder output)
    {
        lock (output) return output.ToString();
    }

    static (int Code, string Output) Run(string file, string[] args, TimeSpan timeout)
    {
        using var p = Start(file, args, out var output);
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout.TotalSeconds} s: {Text(output)}");
        }
        p.WaitForExit();
        return (p.ExitCode, Text(output));
    }

    /// <summary>An MNIST-layout folder (train-images/labels IDX files) of count random 8×8 gray images, labels 0..9.</summary>
    static string WriteIdx(string dir, int count)
    {
        string folder = Path.Combine(dir, "idx");
        Directory.CreateDirectory(folder);
        var rng = new Rng(6);
        var pixels = new byte[count * 64];
        for (int p = 0; p < pixels.Length; p++) pixels[p] = (byte)rng.NextInt(256);
        var labels = new byte[count];
        for (int i = 0; i < count; i++) labels[i] = (byte)(i % 10);
        File.WriteAllBytes(Path.Combine(folder, "train-images-idx3-ubyte"), Data.IdxTests.IdxBytes(2051, [count, 8, 8], pixels));
        File.WriteAllBytes(Path.Combine(folder, "train-labels-idx1-ubyte"), Data.IdxTests.IdxBytes(2049, [count], labels));
        return folder;
    }

    static string WritePngs(string dir, int count)
    {
        string folder = Path.Combine(dir, "pngs");
        Directory.CreateDirectory(folder);
        var rng = new Rng(5);
        for (int i = 0; i < count; i++)
        {
            var pixels = new byte[8 * 8];
            for (int p = 0; p < pixels.Length; p++) pixels[p] = (byte)rng.NextInt(256);
            Png.Write(Path.Combine(folder, $"{i:D3}.png"), new Image8(8, 8, 1, pixels));
        }
        return folder;
    }
}

/// <summary>A fact that is skipped, with the reason, when Open MPI's mpirun is not on the PATH.</summary>
public sealed class MpirunFactAttribute : FactAttribute
{
    public MpirunFactAttribute()
    {
        if (Find() is null) Skip = "mpirun is not installed: apt-get install openmpi-bin libopenmpi-dev (.ci/run installs them)";
    }

    internal static string? Find() => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);
}

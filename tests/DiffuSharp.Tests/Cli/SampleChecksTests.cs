// `sample` checks its outputs and the sizes --n implies before it samples (before it even loads the model for the
// output checks): a missing folder, a folder given as a file, a wrong extension, --n whose n·C·H·W overflows an int
// (it used to throw OverflowException or "Destination is too short") or whose grid exceeds the PNG limit; each is
// one error line naming the flag, in well under the time of one sampling step.
using System.Diagnostics;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class SampleChecksTests
{
    static void Fails(string[] args, params string[] expected)
    {
        var clock = Stopwatch.StartNew();
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli(args);
        Assert.Equal(2, code);
        string line = Assert.Single(stderr.TrimEnd().Split('\n'));
        foreach (var e in expected) Assert.True(line.Contains(e, StringComparison.Ordinal), $"'{e}' not in: {line}");
        Assert.True(clock.Elapsed.TotalSeconds < 10, $"took {clock.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public void Outputs_are_checked_before_the_model_is_even_read()
    {
        string dir = TrainingFixtures.TempFolder("sample-out");
        try
        {
            string noModel = Path.Combine(dir, "no-such-model"), missing = Path.Combine(dir, "missing");
            Fails(["sample", "--model", noModel, "--out", Path.Combine(missing, "g.png")], "--out", $"folder {missing} does not exist");
            Fails(["sample", "--model", noModel, "--out", dir], "--out", "is a folder");
            Fails(["sample", "--model", noModel, "--out", Path.Combine(dir, "g.gif")], "--out", "must end in .png, .jpg or .jpeg");
            Fails(["sample", "--model", noModel, "--save-npy", Path.Combine(dir, "s.png")], "--save-npy", "must end in .npy");
            Fails(["sample", "--model", noModel, "--trajectory", Path.Combine(dir, "t.npy")], "--trajectory", "must end in .png, .jpg or .jpeg");

            // --save-npy into a missing folder used to fail after the PNG was written: now nothing is written.
            string model = CliModelFixture.TinyModelFolder(dir), grid = Path.Combine(dir, "g.png");
            Fails(["sample", "--model", model, "--out", grid, "--save-npy", Path.Combine(missing, "s.npy"), "--steps", "1"], "--save-npy", "does not exist");
            Assert.False(File.Exists(grid));
            Assert.Empty(Directory.GetFiles(dir, ".diffusharp-probe-*"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void An_unwritable_folder_is_refused_before_sampling()
    {
        if (Environment.UserName == "root" || OperatingSystem.IsWindows()) return;      // root writes anywhere
        string dir = TrainingFixtures.TempFolder("sample-ro");
        string ro = Path.Combine(dir, "ro");
        Directory.CreateDirectory(ro);
        try
        {
            File.SetUnixFileMode(ro, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            Fails(["sample", "--model", Path.Combine(dir, "none"), "--out", Path.Combine(ro, "g.png")], "--out", "cannot write in");
        }
        finally
        {
            File.SetUnixFileMode(ro, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Memory_that_n_needs_is_checked_against_what_the_process_may_use()
    {
        string dir = TrainingFixtures.TempFolder("sample-mem");
        try
        {
            // A child process with a 256 MB GC heap limit: 1,000,000 samples of 8×8 need 256 MB of floats plus the grid.
            string model = CliModelFixture.TinyModelFolder(dir);
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "DiffuSharp.Cli.dll"), "sample", "--model", model, "--n", "1000000", "--out", Path.Combine(dir, "g.png") })
                psi.ArgumentList.Add(a);
            psi.Environment["DOTNET_GCHeapHardLimit"] = "0x10000000";
            using var p = Process.Start(psi)!;
            string stderr = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            Assert.True(p.WaitForExit(60_000));
            Assert.Equal(2, p.ExitCode);
            Assert.Matches(@"^error: sample: --n 1000000 needs at least 0\.[0-9] GB for its samples and grid, more than the 0\.[0-9] GB this process may use; lower --n$", stderr.Trim());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData(3_000_000, "more than one array holds")]                 // OverflowException before
    [InlineData(5_478_275, "more than one array holds")]                 // n·C·H·W wrapped: "Destination is too short"
    [InlineData(1_000_000, "PNG grid, over the 16384 limit")]            // a multi-hour run that would fail at the end
    public void Sizes_from_n_are_computed_in_64_bit_and_checked_before_sampling(int n, string expected)
    {
        string dir = TrainingFixtures.TempFolder("sample-n");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir, imageSize: 28);
            Fails(["sample", "--model", model, "--n", n.ToString(), "--steps", "1", "--out", Path.Combine(dir, "g.png")], $"--n {n}", expected);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

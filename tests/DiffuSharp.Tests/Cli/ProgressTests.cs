// Progress of the long commands (Progress/ProgressBar.cs): on a terminal (Spectre's test console, interactive with
// ANSI) `sample` shows a bar whose step count advances to the total; redirected, plain lines at every tenth; `train`
// redirected writes one plain line per log line instead of JSON (log.jsonl keeps the records).
using System.Text.RegularExpressions;
using DiffuSharp.Cli;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Tests.Training;
using Spectre.Console.Testing;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class ProgressTests : IDisposable
{
    readonly string _dir = TrainingFixtures.TempFolder("progress");
    readonly string _model;

    public ProgressTests() => _model = CliModelFixture.TinyModelFolder(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static int[] Steps(string text, string label, int total)
        => Regex.Matches(text, $@"{label}: step (\d+)/{total}\b").Select(m => int.Parse(m.Groups[1].Value)).ToArray();

    string[] SampleArgs() => ["sample", "--model", _model, "--n", "6", "--batch", "3", "--steps", "20", "--out", Path.Combine(_dir, "s.png")];

    [Fact]
    public void Sample_on_a_terminal_shows_a_bar_that_advances_to_the_total()
    {
        var console = new TestConsole().Interactive().EmitAnsiSequences().Width(160);
        var stdout = new StringWriter();
        int code = Program.Run(SampleArgs(), stdout, new StringWriter(), new ProgressOutput(Console: console));
        Assert.Equal(0, code);
        string shown = console.Output;
        int[] steps = Steps(shown, "sample", 40);                 // 2 batches × 20 steps
        Assert.True(steps.Distinct().Count() >= 5, $"the bar was drawn at {steps.Distinct().Count()} step counts: {string.Join(",", steps.Distinct())}");
        Assert.Equal(steps.Order(), steps);                       // never goes back
        Assert.Equal(40, steps[^1]);
        Assert.Contains("it/s", shown);
        Assert.Contains("\u001b[", shown);                        // drawn with ANSI sequences, in place
        Assert.DoesNotContain("step", stdout.ToString());         // the command's own output stays clean
    }

    [Fact]
    public void Sample_redirected_writes_a_plain_line_at_every_tenth()
    {
        var lines = new StringWriter();
        int code = Program.Run(SampleArgs(), new StringWriter(), new StringWriter(), new ProgressOutput(Lines: lines));
        Assert.Equal(0, code);
        var text = lines.ToString().TrimEnd().Split('\n');
        Assert.Equal([4, 8, 12, 16, 20, 24, 28, 32, 36, 40], Steps(lines.ToString(), "sample", 40));
        Assert.All(text, l => Assert.Matches(@"^sample: step \d+/40 [0-9.]+ it/s (\d+:\d\d left|in \d+:\d\d)\r?$", l));
        Assert.DoesNotContain("\u001b", lines.ToString());
    }

    [Fact]
    public void Eval_and_invert_and_interpolate_report_progress_to_the_end()
    {
        var lines = new StringWriter();
        string png = CliModelFixture.PngFile(_dir, "a.png");
        Assert.Equal(0, Program.Run(["invert", "--model", _model, "--image", png, "--steps", "10", "--out", Path.Combine(_dir, "inv.png")],
            new StringWriter(), new StringWriter(), new ProgressOutput(Lines: lines)));
        Assert.Equal(19, Steps(lines.ToString(), "invert", 19)[^1]);                      // 9 inversion + 10 reconstruction calls
        lines = new StringWriter();
        Assert.Equal(0, Program.Run(["interpolate", "--model", _model, "--seeds", "1", "2", "--t", "25", "--steps", "10", "--out", Path.Combine(_dir, "int.png")],
            new StringWriter(), new StringWriter(), new ProgressOutput(Lines: lines)));
        var m = Regex.Matches(lines.ToString(), @"interpolate: step (\d+)/(\d+)");
        Assert.NotEmpty(m);
        Assert.Equal(m[^1].Groups[2].Value, m[^1].Groups[1].Value);           // the count of model calls was right
        lines = new StringWriter();
        string data = EvalCommandTests.IdxFolder(_dir), model28 = CliModelFixture.TinyModelFolder(Path.Combine(_dir, "m28"), imageSize: 28);
        Assert.Equal(0, Program.Run(["eval", "--model", model28, "--data", data, "--n", "0", "--nll-n", "2", "--batch", "1"],
            new StringWriter(), new StringWriter(), new ProgressOutput(Lines: lines)));
        Assert.Equal(100, Steps(lines.ToString(), "eval nll", 100)[^1]);                   // 2 batches × T = 50 model calls
    }

    [Fact]
    public void Train_redirected_prints_plain_step_lines_not_json()
    {
        string run = Path.Combine(_dir, "run");
        var stdout = new StringWriter();
        int code = Program.Run(["train", "--steps", "4", .. TrainSafetyTests.Tiny(_dir, run)], stdout, new StringWriter(), ProgressOutput.None);
        Assert.Equal(0, code);
        var lines = stdout.ToString().Split('\n').Where(l => l.StartsWith("step ")).ToArray();
        Assert.Equal(4, lines.Length);                                    // --log_interval 1
        Assert.Matches(@"^step 1/4 loss \d+\.\d{4} [0-9.]+ it/s \d+:\d\d left\r?$", lines[0]);
        Assert.Matches(@"^step 4/4 loss \d+\.\d{4} [0-9.]+ it/s in \d+:\d\d\r?$", lines[3]);
        Assert.DoesNotContain("{", stdout.ToString());
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
    }

    [Fact]
    public void Clock_formats_minutes_and_hours()
    {
        Assert.Equal("1:32", ProgressBar.Clock(92));
        Assert.Equal("0:00", ProgressBar.Clock(0.2));
        Assert.Equal("1:01:40", ProgressBar.Clock(3700));
    }
}

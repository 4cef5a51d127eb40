// Progress of a loop of known length (sampling steps, batches): on a terminal a Spectre.Console bar with step/steps,
// it/s, elapsed and remaining time; when the output is redirected, plain lines ("txt2img: step 3/20, 1.52 it/s, 0:11
// left") on the log writer, the first and last step always and at most one a second between them, so a log stays short
// whatever the loop's length. The work runs inside Run and reports the number of finished steps.
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace DiffuSharp.Cli.Progress;

public sealed class ProgressReporter
{
    readonly string _label;
    readonly int _total;
    readonly TextWriter? _plain;
    readonly ProgressTask? _task;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly TimeSpan _plainInterval;
    TimeSpan _lastLine = TimeSpan.MinValue;
    int _done;

    ProgressReporter(string label, int total, TextWriter? plain, ProgressTask? task, TimeSpan plainInterval)
        => (_label, _total, _plain, _task, _plainInterval) = (label, total, plain, task, plainInterval);

    /// <summary>Steps finished so far.</summary>
    public int Done => _done;

    /// <summary>True when <paramref name="stdout"/> is the process's standard output and that is a terminal.</summary>
    public static bool IsTerminal(TextWriter stdout) => ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;

    /// <summary>Runs <paramref name="work"/> with a reporter: a bar on <paramref name="console"/> when one is given (a
    /// terminal: <see cref="AnsiConsole.Console"/>), else plain lines on <paramref name="log"/>.</summary>
    /// <param name="plainInterval">the least time between two plain lines (default 1 s)</param>
    public static T Run<T>(string label, int total, TextWriter log, IAnsiConsole? console, Func<ProgressReporter, T> work, TimeSpan? plainInterval = null)
    {
        if (total < 1) throw new ArgumentException($"a progress needs at least 1 step, got {total}");
        if (console is null) return work(new ProgressReporter(label, total, log, null, plainInterval ?? TimeSpan.FromSeconds(1)));
        return console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new StepsColumn(), new SpeedColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => work(new ProgressReporter(label, total, null, ctx.AddTask(Markup.Escape(label), maxValue: total), TimeSpan.Zero)));
    }

    /// <summary>Reports that <paramref name="done"/> of the steps are finished.</summary>
    public void Report(int done)
    {
        _done = Math.Clamp(done, 0, _total);
        if (_task is not null)
        {
            _task.Value = _done;
            return;
        }
        var now = _clock.Elapsed;
        if (_done < _total && _done > 1 && now - _lastLine < _plainInterval) return;
        _lastLine = now;
        _plain!.WriteLine(PlainLine(_label, _done, _total, now));
    }

    /// <summary>"label: step 3/20, 1.52 it/s, 0:11 left" (rate and time left once a step has finished).</summary>
    public static string PlainLine(string label, int done, int total, TimeSpan elapsed)
    {
        var inv = CultureInfo.InvariantCulture;
        string line = $"{label}: step {done}/{total}";
        if (done == 0 || elapsed <= TimeSpan.Zero) return line;
        double rate = done / elapsed.TotalSeconds;
        string speed = rate >= 1 ? $"{rate.ToString("0.00", inv)} it/s" : $"{(1 / rate).ToString("0.00", inv)} s/it";
        return done == total ? $"{line}, {speed}, {Clock(elapsed)} in all" : $"{line}, {speed}, {Clock(TimeSpan.FromSeconds((total - done) / rate))} left";
    }

    static string Clock(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{t.Minutes}:{t.Seconds:00}";

    /// <summary>"3/20".</summary>
    sealed class StepsColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime)
            => new Spectre.Console.Text($"{(int)task.Value}/{(int)task.MaxValue}");
    }

    /// <summary>"1.52 it/s", or "3.10 s/it" when a step takes longer than a second.</summary>
    sealed class SpeedColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime)
        {
            var inv = CultureInfo.InvariantCulture;
            if (task.Value <= 0 || task.ElapsedTime is not { } elapsed || elapsed <= TimeSpan.Zero) return new Spectre.Console.Text("– it/s");
            double rate = task.Value / elapsed.TotalSeconds;
            return new Spectre.Console.Text(rate >= 1 ? $"{rate.ToString("0.00", inv)} it/s" : $"{(1 / rate).ToString("0.00", inv)} s/it");
        }
    }
}

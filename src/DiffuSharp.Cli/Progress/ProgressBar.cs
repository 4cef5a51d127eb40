// Progress of a long command, one way for all of them: a Spectre.Console bar on a terminal, plain lines when the
// output is redirected, nothing when there is nowhere to show it. Where progress goes is a ProgressOutput, set for
// the run by Program.Run (ProgressOutput.Use); a command only says what it counts:
//
//     using var bar = ProgressBar.Start("sample", total: batches * steps);
//     foreach (...) { ...; bar.Advance(); }
//
// Both forms show the same text: "sample: step 20/300 12.3 it/s 0:32 left" (train adds "loss 0.0612"). Plain lines
// come at every tenth of the total and at the end (or, with Lines.Manual, when the command calls WriteLine).
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace DiffuSharp.Cli.Progress;

/// <summary>When plain lines are written: at every tenth of the total and at the end, or only when asked.</summary>
public enum LineMode { Tenths, Manual }

public sealed class ProgressBar : IDisposable
{
    readonly string _label;
    readonly long _total, _start;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly TextWriter? _lines;
    readonly LineMode _mode;
    readonly object _gate = new();
    long _value;
    int _tenthsShown;
    string? _detail;
    // the live bar: Spectre's Progress runs on its own thread until Dispose
    readonly Thread? _thread;
    readonly ManualResetEventSlim _finish = new(), _ready = new();
    ProgressTask? _task;
    ProgressContext? _ctx;

    ProgressBar(ProgressOutput output, string label, long total, long start, LineMode mode)
    {
        (_label, _total, _start, _value, _mode) = (label, Math.Max(1, total), start, start, mode);
        _tenthsShown = (int)(10 * start / _total);
        if (output.Console is { } console)
        {
            _thread = new Thread(() => console.Progress().AutoClear(false).AutoRefresh(true)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    _ctx = ctx;
                    _task = ctx.AddTask(Text(), maxValue: _total);
                    _task.Value = _value;
                    _ready.Set();
                    _finish.Wait();
                    lock (_gate) { _task.Description = Text(); _task.Value = _value; }
                    ctx.Refresh();
                })) { IsBackground = true, Name = "progress" };
            _thread.Start();
            _ready.Wait();
        }
        else _lines = output.Lines;
    }

    /// <summary>A bar for <paramref name="total"/> steps in the current run's ProgressOutput (starting at
    /// <paramref name="start"/>, e.g. a resumed run's step).</summary>
    public static ProgressBar Start(string label, long total, long start = 0, LineMode mode = LineMode.Tenths)
        => new(ProgressOutput.Current, label, total, start, mode);

    /// <summary>A bar in the given output rather than the run's.</summary>
    public static ProgressBar Start(ProgressOutput output, string label, long total, long start = 0, LineMode mode = LineMode.Tenths)
        => new(output, label, total, start, mode);

    public long Value => Interlocked.Read(ref _value);

    /// <summary>Extra text after the step count, e.g. "loss 0.0612".</summary>
    public string? Detail { get => _detail; set { lock (_gate) _detail = value; } }

    public void Advance(long by = 1) => Set(Value + by);

    public void Set(long value, string? detail = null)
    {
        string? line = null;
        bool refresh = false;
        lock (_gate)
        {
            _value = Math.Min(value, _total);
            if (detail is not null) _detail = detail;
            int tenths = (int)(10 * _value / _total);
            bool newTenth = tenths > _tenthsShown;
            if (newTenth) _tenthsShown = tenths;
            if (_task is not null)
            {
                _task.Value = _value;
                _task.Description = Text();
                refresh = newTenth;
            }
            else if (_lines is not null && _mode == LineMode.Tenths && newTenth) line = Text();
        }
        if (refresh) _ctx?.Refresh();                          // a render at every tenth at least, however fast the steps
        if (line is not null) WriteLineNow(line);
    }

    /// <summary>Writes the current state as a plain line (redirected output only; the bar shows it anyway).</summary>
    public void WriteLine()
    {
        if (_lines is null) return;
        string line;
        lock (_gate) line = Text();
        WriteLineNow(line);
    }

    void WriteLineNow(string line)
    {
        _lines!.WriteLine(line);
        _lines.Flush();
    }

    /// <summary>"sample: step 20/300 loss 0.0612 12.3 it/s 0:32 left" (the rate and the time left once a step is done).</summary>
    string Text()
    {
        long done = _value - _start;
        double secs = _clock.Elapsed.TotalSeconds;
        var sb = new System.Text.StringBuilder();
        if (_label.Length > 0) sb.Append(_label).Append(": ");
        sb.Append(CultureInfo.InvariantCulture, $"step {_value}/{_total}");
        if (!string.IsNullOrEmpty(_detail)) sb.Append(' ').Append(_detail);
        if (done > 0 && secs > 0)
        {
            double rate = done / secs;
            sb.Append(CultureInfo.InvariantCulture, $" {rate.ToString(rate >= 10 ? "F1" : "F2", CultureInfo.InvariantCulture)} it/s");
            if (_value < _total) sb.Append(' ').Append(Clock((_total - _value) / rate)).Append(" left");
            else sb.Append(" in ").Append(Clock(secs));
        }
        return sb.ToString();
    }

    /// <summary>92 s → "1:32"; 3,700 s → "1:01:40".</summary>
    public static string Clock(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Min(Math.Round(seconds), TimeSpan.MaxValue.TotalSeconds / 2));
        return t.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}")
            : string.Create(CultureInfo.InvariantCulture, $"{t.Minutes}:{t.Seconds:D2}");
    }

    bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_thread is not null)
        {
            _finish.Set();
            _thread.Join();
        }
        else if (_lines is not null && _mode == LineMode.Tenths && _tenthsShown < 10 && _value > _start) WriteLine();   // where it stopped
    }
}

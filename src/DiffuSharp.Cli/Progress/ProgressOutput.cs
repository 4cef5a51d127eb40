// Where a run's progress goes: a live bar on an IAnsiConsole (a terminal, or a test console), plain lines on a
// TextWriter (redirected output), or nowhere. Program.Run sets it for the command it runs (Use), so every
// ProgressBar of that run finds it without being handed it; it flows with the run (AsyncLocal), so runs on other
// threads (tests in parallel) keep their own.
using Spectre.Console;

namespace DiffuSharp.Cli.Progress;

public sealed record ProgressOutput(IAnsiConsole? Console = null, TextWriter? Lines = null)
{
    public static readonly ProgressOutput None = new();

    static readonly AsyncLocal<ProgressOutput?> _current = new();

    public static ProgressOutput Current => _current.Value ?? None;

    /// <summary>The process's own: a bar when stdout is a terminal, plain lines on stderr when it is redirected
    /// (stdout stays the command's output: a table, --json lines).</summary>
    public static ProgressOutput ForProcess()
        => System.Console.IsOutputRedirected
            ? new ProgressOutput(Lines: System.Console.Error)
            : new ProgressOutput(Console: AnsiConsole.Console);

    /// <summary>Makes <paramref name="output"/> the current run's until the returned scope is disposed.</summary>
    public static IDisposable Use(ProgressOutput output)
    {
        var before = _current.Value;
        _current.Value = output;
        return new Scope(() => _current.Value = before);
    }

    sealed class Scope(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }
}

// One generation job: its spec, its progress (step, steps, speed, the latest preview PNG) and its result. The job
// runner's thread writes progress; any number of readers (the page's event stream, sd-webui's /progress) read the
// latest state and wait for the next change with WaitForChangeAsync.
using System.Diagnostics;

namespace DiffuSharp.Server;

public enum JobState { Queued, Running, Done, Cancelled, Failed }

/// <summary>One image a job produced: a PNG carrying the `parameters` chunk, and the seed that draws it.</summary>
public sealed record JobImage(string Id, string Model, byte[] Png, string Parameters, long Seed, DateTime Created);

/// <summary>What a job left: its images (those finished before an interrupt, when interrupted), an optional
/// trajectory strip, warnings, and the error of a failed job.</summary>
public sealed record JobResult(IReadOnlyList<JobImage> Images, byte[]? Trajectory, IReadOnlyList<string> Warnings, string? Error);

/// <summary>A snapshot of a job's progress.</summary>
/// <param name="Step">denoising steps done in the current batch</param>
/// <param name="Steps">denoising steps (model calls) per batch</param>
/// <param name="Batch">the batch being drawn, 0-based (n_iter batches)</param>
public sealed record JobProgress(string Id, JobState State, int Step, int Steps, int Batch, int Batches, double ElapsedSeconds,
    double EtaSeconds, double StepsPerSecond, long Version, int PreviewCount);

public sealed class Job
{
    readonly object _gate = new();
    readonly CancellationTokenSource _cts = new();
    readonly TaskCompletionSource<JobResult> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly Stopwatch _clock = new();
    int _step, _steps, _batch, _previews;
    long _version;
    byte[]? _preview;

    public string Id { get; }
    public GenerationSpec Spec { get; }
    public ModelEntry Model { get; }
    public DateTime Created { get; } = DateTime.UtcNow;
    public JobState State { get; private set; } = JobState.Queued;
    /// <summary>Why the job was cancelled ("interrupted", "client disconnected"), when it was.</summary>
    public string? CancelReason { get; private set; }
    public CancellationToken Cancellation => _cts.Token;
    public Task<JobResult> Completion => _done.Task;

    public Job(string id, GenerationSpec spec, ModelEntry model) => (Id, Spec, Model) = (id, spec, model);

    /// <summary>Asks the job to stop: a queued job never starts, a running one stops at its next step.</summary>
    public void Cancel(string reason)
    {
        lock (_gate)
        {
            if (State is JobState.Done or JobState.Failed or JobState.Cancelled) return;
            CancelReason ??= reason;
        }
        _cts.Cancel();
    }

    public JobProgress Progress
    {
        get
        {
            lock (_gate)
            {
                double elapsed = _clock.Elapsed.TotalSeconds;
                int done = _batch * _steps + _step, total = _steps * Spec.NIter;
                double rate = done > 0 && elapsed > 0 ? done / elapsed : 0;
                double eta = rate > 0 ? (total - done) / rate : 0;
                return new JobProgress(Id, State, _step, _steps, _batch, Spec.NIter, elapsed, eta, rate, _version, _previews);
            }
        }
    }

    /// <summary>The latest preview (PNG of the predicted x0), or null before the first step.</summary>
    public byte[]? Preview { get { lock (_gate) return _preview; } }

    /// <summary>Waits until the version moves past <paramref name="seen"/> (or the job ends).</summary>
    public Task WaitForChangeAsync(long seen, CancellationToken ct)
    {
        Task t;
        lock (_gate)
        {
            if (_version != seen || State is JobState.Done or JobState.Failed or JobState.Cancelled) return Task.CompletedTask;
            t = _changed.Task;
        }
        return t.WaitAsync(ct);
    }

    internal void Start()
    {
        lock (_gate) { State = JobState.Running; _clock.Start(); }
        Bump();
    }

    /// <summary>The engine's report after each step: progress, and a new preview when it made one.</summary>
    internal void Report(int batch, int step, int steps, byte[]? preview)
    {
        lock (_gate)
        {
            (_batch, _step, _steps) = (batch, step, steps);
            if (preview is not null) { _preview = preview; _previews++; }
        }
        Bump();
    }

    internal void Finish(JobState state, JobResult result)
    {
        lock (_gate) { State = state; _clock.Stop(); }
        _done.TrySetResult(result);
        Bump();
    }

    void Bump()
    {
        TaskCompletionSource old;
        lock (_gate)
        {
            _version++;
            old = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        old.TrySetResult();
    }
}

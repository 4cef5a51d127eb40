// The one place the engine runs: a single worker thread takes jobs from a bounded queue, one at a time (the engine's
// kernels use every core; two jobs at once would only slow both). A full queue refuses the job (the endpoints answer
// 429); a cancelled job (interrupt, cancel, or its client gone) stops at its next step or, still queued, never starts.
using System.Collections.Concurrent;
using System.Threading.Channels;

namespace DiffuSharp.Server;

public sealed class JobRunner : IDisposable
{
    readonly Channel<Job> _queue;
    readonly GenerationEngine _engine;
    readonly Gallery _gallery;
    readonly ConcurrentDictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    readonly ConcurrentQueue<string> _order = new();
    readonly Thread _worker;
    readonly CancellationTokenSource _stop = new();
    long _nextId, _completed, _cancelled, _failed;
    volatile Job? _current;

    public JobRunner(GenerationEngine engine, Gallery gallery, int queueCapacity)
    {
        _engine = engine;
        _gallery = gallery;
        _queue = Channel.CreateBounded<Job>(new BoundedChannelOptions(Math.Max(1, queueCapacity)) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _worker = new Thread(Work) { IsBackground = true, Name = "DiffuSharp engine" };
        _worker.Start();
    }

    /// <summary>The running job, if any.</summary>
    public Job? Current => _current;
    /// <summary>Jobs waiting behind the running one.</summary>
    public int Queued => _queue.Reader.Count;
    public long Completed => Interlocked.Read(ref _completed);
    public long Cancelled => Interlocked.Read(ref _cancelled);
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Queues a job; null when the queue is full.</summary>
    public Job? TryEnqueue(GenerationSpec spec, ModelEntry model)
    {
        var job = new Job(Interlocked.Increment(ref _nextId).ToString("x", System.Globalization.CultureInfo.InvariantCulture) + Guid.NewGuid().ToString("N")[..8], spec, model);
        _jobs[job.Id] = job;
        if (!_queue.Writer.TryWrite(job))
        {
            _jobs.TryRemove(job.Id, out _);
            return null;
        }
        _order.Enqueue(job.Id);
        // keep the states of the last 64 jobs for lookups (their results hold PNGs: bounded memory) (and every queued or running one); one pass at most
        for (int n = _order.Count - 64; n > 0 && _order.TryDequeue(out var old); n--)
            if (_jobs.TryGetValue(old, out var j) && j.State is JobState.Queued or JobState.Running) _order.Enqueue(old);
            else _jobs.TryRemove(old, out _);
        return job;
    }

    public Job? Find(string id) => _jobs.TryGetValue(id, out var j) ? j : null;

    void Work()
    {
        while (!_stop.IsCancellationRequested)
        {
            Job job;
            try
            {
                if (!_queue.Reader.WaitToReadAsync(_stop.Token).AsTask().GetAwaiter().GetResult()) return;
                if (!_queue.Reader.TryRead(out job!)) continue;
            }
            catch (OperationCanceledException) { return; }
            if (job.Cancellation.IsCancellationRequested)
            {
                Interlocked.Increment(ref _cancelled);
                job.Finish(JobState.Cancelled, new JobResult([], null, [], null));
                continue;
            }
            _current = job;
            job.Start();
            var images = new List<JobImage>();
            JobState state;
            JobResult outcome;
            try
            {
                outcome = _engine.Run(job, images);
                _gallery.Add(outcome.Images);
                Interlocked.Increment(ref _completed);
                state = JobState.Done;
            }
            catch (OperationCanceledException) when (job.Cancellation.IsCancellationRequested)
            {
                _gallery.Add(images);
                Interlocked.Increment(ref _cancelled);
                (state, outcome) = (JobState.Cancelled, new JobResult(images, null, [], null));
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref _failed);
                (state, outcome) = (JobState.Failed, new JobResult(images, null, [], e is ArgumentException or InvalidDataException or IOException ? e.Message : $"{e.GetType().Name}: {e.Message}"));
            }
            // the runner is idle before anyone waiting on the job hears of its end, so a client that reads the
            // progress right after its answer never sees the finished job as the current one
            _current = null;
            job.Finish(state, outcome);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _queue.Writer.TryComplete();
        _current?.Cancel("server stopping");
        _worker.Join(TimeSpan.FromSeconds(10));
    }
}

// OpProfiler: a profile counts the ops of the code that started it (its thread, and the pool workers that help its
// parallel loops) and nothing else, so two profiles running at once (two tests) never see each other's ops.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Core;

[Collection("Parallelism")]
public class OpProfilerTests
{
    static Dictionary<string, (int Forward, int Backward)> Counts(OpProfiler.Row[] rows)
        => rows.ToDictionary(r => r.Op, r => (r.ForwardCalls, r.BackwardCalls));

    [Fact]
    public async Task Two_profiles_at_once_each_count_only_their_own_ops()
    {
        // two threads profile different op sequences in lock step, so every op of one runs while the other profiles
        const int expCalls = 40, tanhCalls = 25;
        using var together = new Barrier(2);
        void Together()
        {
            if (!together.SignalAndWait(TimeSpan.FromSeconds(60))) throw new TimeoutException("the other profiling thread stopped");
        }
        (Dictionary<string, (int, int)> Counts, bool RunningAtStop, bool RunningAfter) Profile(Func<Tensor, Tensor> op, int calls)
        {
            var x = Tensor.RandN([64], new Rng(1)).RequireGrad();
            OpProfiler.Start();
            Together();                                                // both profiles are running
            for (int i = 0; i < Math.Max(expCalls, tanhCalls); i++)
            {
                if (i < calls) op(x).Sum().Backward();                 // op, Sum forward; Sum, op backward
                Together();
            }
            bool runningAtStop = OpProfiler.IsRunning;
            var rows = OpProfiler.Stop();
            bool runningAfter = OpProfiler.IsRunning;
            Together();                                                // neither stops before both have recorded all
            return (Counts(rows), runningAtStop, runningAfter);
        }
        var both = await Task.WhenAll(Task.Run(() => Profile(x => x.Exp(), expCalls)), Task.Run(() => Profile(x => x.Tanh(), tanhCalls)))
            .WaitAsync(TimeSpan.FromMinutes(2));
        var (exp, tanh) = (both[0], both[1]);

        Assert.Equal(new Dictionary<string, (int, int)> { ["Exp"] = (expCalls, expCalls), ["Sum"] = (expCalls, expCalls) }, exp.Counts);
        Assert.Equal(new Dictionary<string, (int, int)> { ["Tanh"] = (tanhCalls, tanhCalls), ["Sum"] = (tanhCalls, tanhCalls) }, tanh.Counts);
        Assert.True(exp.RunningAtStop && tanh.RunningAtStop, "a profile was not running until its own Stop");
        Assert.False(exp.RunningAfter || tanh.RunningAfter, "a profile ran on after its Stop");
        Assert.False(OpProfiler.IsRunning);                            // nothing leaked into the test's own thread
    }

    [Fact]
    public async Task A_profile_on_another_thread_is_not_running_here()
    {
        using var started = new ManualResetEventSlim();
        using var checkedHere = new ManualResetEventSlim();
        var other = Task.Run(() =>
        {
            OpProfiler.Start();
            started.Set();
            checkedHere.Wait();
            return OpProfiler.Stop();
        });
        started.Wait();
        Assert.False(OpProfiler.IsRunning);
        Tensor.RandN([8], new Rng(2)).Sqrt();                          // not counted there
        checkedHere.Set();
        Assert.DoesNotContain(await other.WaitAsync(TimeSpan.FromMinutes(1)), r => r.Op == "Sqrt");
        Assert.Empty(OpProfiler.Stop());                               // nothing to stop on this thread
    }

    /// <summary>Runs an op per index and notes the thread; slow enough per index that the workers take some.</summary>
    readonly struct OpPerIndex(Tensor x, int[] threads) : IWorkItem
    {
        public void Invoke(int index)
        {
            x.Sigmoid();
            threads[index] = Environment.CurrentManagedThreadId;
            Thread.SpinWait(20_000);
        }
    }

    [Fact]
    public void A_profile_counts_the_ops_its_parallel_loop_runs_on_pool_workers()
    {
        int saved = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 2;
            var x = Tensor.RandN([16], new Rng(3));
            bool workerRan = false;
            // the pool may be busy with another test's loop (the caller then runs every index): try until a worker helped
            for (int attempt = 0; attempt < 50 && !workerRan; attempt++)
            {
                const int count = 64;
                var threads = new int[count];
                OpProfiler.Start();
                ParallelFor.Run(count, new OpPerIndex(x, threads));
                var rows = OpProfiler.Stop();
                Assert.Equal(new Dictionary<string, (int, int)> { ["Sigmoid"] = (count, 0) }, Counts(rows));
                workerRan = threads.Any(t => t != Environment.CurrentManagedThreadId);

                // and the next loop, with no profile, records nothing into the stopped one or anywhere
                ParallelFor.Run(count, new OpPerIndex(x, threads));
                Assert.Equal(count, rows.Single().ForwardCalls);
            }
            Assert.True(workerRan, "no index ran on a pool worker in 50 loops");
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Fact]
    public void A_profile_started_inside_another_counts_apart_and_hands_back()
    {
        var x = Tensor.RandN([8], new Rng(4));
        OpProfiler.Start();
        x.Exp();
        OpProfiler.Start();
        x.Tanh();
        var inner = Counts(OpProfiler.Stop());
        x.Exp();
        var outer = Counts(OpProfiler.Stop());
        Assert.Equal(new Dictionary<string, (int, int)> { ["Tanh"] = (1, 0) }, inner);
        Assert.Equal(new Dictionary<string, (int, int)> { ["Exp"] = (2, 0) }, outer);
        Assert.False(OpProfiler.IsRunning);
    }
}

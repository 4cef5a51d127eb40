// KernelSwitches: a scope changes the kernels of the code inside it (and of the pool workers that help it) and of
// nothing else, so a test that forces a kernel cannot change the bits of a test running beside it.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public class KernelSwitchesTests
{
    /// <summary>Records, per index, the switches in force and the thread that ran it; slow enough per index that the
    /// workers take some.</summary>
    readonly struct Record(KernelSwitches[] seen, int[] threads) : IWorkItem
    {
        public void Invoke(int index)
        {
            seen[index] = KernelSwitches.Current;
            threads[index] = Environment.CurrentManagedThreadId;
            Thread.SpinWait(20_000);
        }
    }

    [Fact]
    public void A_scope_holds_inside_it_and_restores_the_previous_switches()
    {
        Assert.Same(KernelSwitches.Default, KernelSwitches.Current);
        using (KernelSwitches.With(s => s with { LanesForced = true }))
        {
            Assert.True(ConvLanes.Forced);
            using (KernelSwitches.With(s => s with { DirectBandFloats = 7 }))
            {
                Assert.True(ConvLanes.Forced);                           // the inner scope starts from the outer one
                Assert.Equal(7, ConvDirect.BandFloats);
            }
            Assert.Equal(KernelSwitches.Default.DirectBandFloats, ConvDirect.BandFloats);
            Assert.True(ConvLanes.Forced);
        }
        Assert.Same(KernelSwitches.Default, KernelSwitches.Current);
        Assert.False(ConvLanes.Forced);
    }

    [Fact]
    public void Pool_workers_run_a_loop_with_the_switches_of_its_caller()
    {
        int saved = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 2;
            bool workerRan = false;
            // the pool may be busy with another test's loop (the caller then runs every index): try until a worker helped
            for (int attempt = 0; attempt < 50 && !workerRan; attempt++)
            {
                const int count = 64;
                var seen = new KernelSwitches[count];
                var threads = new int[count];
                var mine = KernelSwitches.Current with { GemmSlowFirstChunkMs = 1000 + attempt };
                using (KernelSwitches.Use(mine))
                    ParallelFor.Run(count, new Record(seen, threads));
                Assert.All(seen, s => Assert.Same(mine, s));
                workerRan = threads.Any(t => t != Environment.CurrentManagedThreadId);

                // and after the scope, the same workers run the next loop with the defaults again
                using (KernelSwitches.Use(KernelSwitches.Default))
                    ParallelFor.Run(count, new Record(seen, threads));
                Assert.All(seen, s => Assert.Same(KernelSwitches.Default, s));
            }
            Assert.True(workerRan, "no index ran on a pool worker in 50 loops");
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Fact]
    public void A_scope_on_one_thread_does_not_change_the_kernels_of_another()
    {
        // a 3×3 convolution of two images: by default not on the lane kernels (too few images to fill the lanes);
        // with them forced (on two-halves Vector512 where the CPU has no AVX-512) on Winograd, which rounds otherwise
        var rng = new Rng(5);
        var x = Tensor.RandN([2, 8, 16, 16], rng);
        var w = Tensor.RandN([8, 8, 3, 3], rng);
        var b = Tensor.RandN([8], rng);
        float[] Conv() { using (Tensor.NoGrad()) return Tensor.Conv2d(x, w, b, 1, 1).ToArray(); }
        var defaults = Conv();

        using var scopeOpen = new ManualResetEventSlim();
        float[]? besideScope = null;
        var other = new Thread(() => { scopeOpen.Wait(); besideScope = Conv(); });   // started before the scope exists
        other.Start();
        float[] switched;
        using (KernelSwitches.With(s => s with { LanesForced = true, LanesEmulated512 = true }))
        {
            scopeOpen.Set();
            Assert.True(other.Join(TimeSpan.FromMinutes(2)), "the other thread did not finish");   // while the scope is open
            switched = Conv();
        }
        Assert.False(switched.AsSpan().SequenceEqual(defaults), "the forced lane kernels gave the default bits: the check sees nothing");
        Assert.True(besideScope!.AsSpan().SequenceEqual(defaults), "a convolution beside the scope took the switched kernel");
        Assert.True(Conv().AsSpan().SequenceEqual(defaults), "the scope outlived its using block");
    }
}

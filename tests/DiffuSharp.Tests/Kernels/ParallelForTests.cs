using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public class ParallelForTests
{
    struct Mark(int[] hits) : IWorkItem
    {
        public void Invoke(int index) => Interlocked.Increment(ref hits[index]);
    }

    struct Nested(int[] hits, int inner) : IWorkItem
    {
        public void Invoke(int index) => ParallelFor.Run(inner, new Mark(hits), minPerThread: 1);
    }

    struct Throwing(int bad) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            if (bad >= begin && bad < end) throw new InvalidOperationException($"item {bad}");
        }
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(2, 1001)]
    [InlineData(3, 17)]
    [InlineData(4, 3)]
    public void EveryIndexRunsExactlyOnce(int threads, int count)
    {
        int saved = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = threads;
            for (int round = 0; round < 50; round++)
            {
                var hits = new int[count];
                ParallelFor.Run(count, new Mark(hits));
                Assert.All(hits, h => Assert.Equal(1, h));
            }
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Fact]
    public void NestedLoopsRunSeriallyInsideAndStillCoverEverything()
    {
        int saved = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 2;
            var hits = new int[33];
            ParallelFor.Run(4, new Nested(hits, 33));
            Assert.All(hits, h => Assert.Equal(4, h));
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Fact]
    public void LoopsFromSeveralThreadsAtOnceAllComplete()
    {
        int saved = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 2;
            var arrays = Enumerable.Range(0, 4).Select(_ => new int[257]).ToArray();
            var threads = arrays.Select(a => new Thread(() =>
            {
                for (int round = 0; round < 200; round++) ParallelFor.Run(a.Length, new Mark(a));
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();
            foreach (var a in arrays) Assert.All(a, h => Assert.Equal(200, h));
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(99)]
    public void AnExceptionInAnyPartReachesTheCallerAndThePoolKeepsWorking(int bad)
    {
        int saved = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 2;
            var e = Assert.Throws<InvalidOperationException>(() => ParallelFor.RunRange(100, new Throwing(bad)));
            Assert.Equal($"item {bad}", e.Message);
            var hits = new int[100];
            ParallelFor.Run(100, new Mark(hits));
            Assert.All(hits, h => Assert.Equal(1, h));
        }
        finally { Parallelism.MaxThreads = saved; }
    }

    [Fact]
    public void SleepingWorkersWakeForTheNextJob()
    {
        int saved = Parallelism.MaxThreads, savedSpin = Parallelism.SpinMicroseconds;
        try
        {
            Parallelism.MaxThreads = 2;
            Parallelism.SpinMicroseconds = 0;
            for (int round = 0; round < 20; round++)
            {
                Thread.Sleep(2);
                var hits = new int[64];
                ParallelFor.Run(64, new Mark(hits));
                Assert.All(hits, h => Assert.Equal(1, h));
            }
        }
        finally { Parallelism.MaxThreads = saved; Parallelism.SpinMicroseconds = savedSpin; }
    }
}

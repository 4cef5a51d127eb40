// A steady-state training step allocates only small garbage: its activations and gradients come from the pool.
// Measured on this thread with GC.GetAllocatedBytesForCurrentThread (exact and unaffected by other tests); the
// unpooled run of the same steps is measured too, so the test shows what pooling removes and cannot pass vacuously.
using DiffuSharp.Kernels;
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Memory;

/// <summary>Runs with no other test in parallel: the pool is process-wide, and a test renting the same sizes at the
/// same time would take arrays this one returned, making it allocate.</summary>
[CollectionDefinition(nameof(TrainingAllocationTests), DisableParallelization = true)]
public class AloneCollection;

[Collection(nameof(TrainingAllocationTests))]
public class TrainingAllocationTests(ITestOutputHelper output)
{
    static long BytesPerStep(Trainer trainer, int steps)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < steps; i++) trainer.Step();
        return (GC.GetAllocatedBytesForCurrentThread() - before) / steps;
    }

    [Fact]
    public void A_steady_state_training_step_allocates_little_managed_memory()
    {
        int old = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 1;    // every kernel on this thread, so every allocation is counted
            var model = TrainingFixtures.TinyModel() with { ImageSize = 16, AttentionResolutions = "2" };
            var config = new TrainConfig(BatchSize: 16, Lr: 1e-3, EmaRate: "0.99", TotalSteps: 100, Seed: 3);
            var trainer = new Trainer(model, config, TrainingFixtures.Synthetic(count: 32, size: 16));
            for (int i = 0; i < 3; i++) trainer.Step();                  // warm the pool
            long pooled = BytesPerStep(trainer, 3);
            long unpooled;
            using (TensorScope.Unpooled()) unpooled = BytesPerStep(trainer, 3);
            output.WriteLine($"allocated per step: pooled {pooled / 1024} KiB, unpooled {unpooled / 1024} KiB");
            Assert.True(unpooled > 20L << 20, $"the unpooled step allocates only {unpooled >> 10} KiB: the model is too small to test pooling");
            Assert.True(pooled < 512 << 10, $"a pooled training step allocated {pooled >> 10} KiB (unpooled: {unpooled >> 10} KiB)");
        }
        finally { Parallelism.MaxThreads = old; }
    }
}

// A whole training step (losses with learned sigma, the loss-aware sampler, microbatches, clipping, AdamW, EMA) gives
// the same bits on one thread and on two: the resume test's bit identity must not depend on the thread count.
using DiffuSharp.Kernels;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

[Collection("Parallelism")]
public sealed class TrainerThreadDeterminismTests
{
    [Theory]
    [InlineData("loss-second-moment", 2, true)]
    [InlineData("uniform", -1, false)]
    public void Twelve_steps_on_one_and_two_threads_give_identical_weights(string sampler, int microbatch, bool learnSigma)
    {
        string dir = TrainingFixtures.TempFolder("threads");
        int saved = Parallelism.MaxThreads;
        try
        {
            float[] Run(int threads)
            {
                Parallelism.MaxThreads = threads;
                var config = new TrainConfig(BatchSize: 4, Microbatch: microbatch, Lr: 2e-3, WeightDecay: 0.01, WarmupSteps: 3,
                    LrAnnealSteps: 40, GradClip: 1.0, EmaRate: "0.9", ScheduleSampler: sampler, TotalSteps: 12, Seed: 99,
                    LogInterval: 4, SaveInterval: 0, OutputFolder: Path.Combine(dir, threads.ToString()));
                var trainer = new Trainer(TrainingFixtures.TinyModel(learnSigma: learnSigma, dropout: 0.1), config, TrainingFixtures.Synthetic(count: 10));
                for (int i = 0; i < 12; i++) trainer.Step();
                return [.. trainer.Flat.Values, .. trainer.Emas[0].Shadow[0].ToArray()];
            }
            float[] one = Run(1), two = Run(2);
            Assert.Equal(one.Length, two.Length);
            for (int i = 0; i < one.Length; i++)
                if (BitConverter.SingleToInt32Bits(one[i]) != BitConverter.SingleToInt32Bits(two[i]))
                    Assert.Fail($"value {i} of {one.Length}: {one[i]:R} on 1 thread vs {two[i]:R} on 2");
        }
        finally
        {
            Parallelism.MaxThreads = saved;
            Directory.Delete(dir, recursive: true);
        }
    }
}

// Sampling must not depend on how many threads the kernels use (Parallelism.MaxThreads is process-wide, so this
// class shares the "Parallelism" collection with every other test that changes it, and restores it).
using DiffuSharp.Diffusion;
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

[Collection("Parallelism")]
public class DiffusionDeterminismTests
{
    [Fact]
    public void Ddim_eta0_sampling_is_bit_identical_on_one_and_two_threads()
    {
        // 4·3·64·64 = 49152 elements: above the engine's 32768-element threshold, so the kernels really split.
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 100, NoiseSchedule: "cosine", TimestepRespacing: "ddim5"));
        DiffusionModel model = (x, ts) => x.Tanh() * 0.3 + ts.Reshape(-1, 1, 1, 1) * 1e-3;
        var noise = Tensor.RandN([4, 3, 64, 64], new Rng(9));
        int saved = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = 1;
            var one = d.DdimSampleLoop(model, noise.Shape, null, noise).ToArray();
            Parallelism.MaxThreads = 2;
            var two = d.DdimSampleLoop(model, noise.Shape, null, noise).ToArray();
            Assert.Equal(one.Select(BitConverter.SingleToInt32Bits), two.Select(BitConverter.SingleToInt32Bits));
        }
        finally { Parallelism.MaxThreads = saved; }
    }
}

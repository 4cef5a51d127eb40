// The text encoder's Linear layers take Gemm.Linear's weight-rows path at its row counts; the whole model must give
// the bits it gives with every Linear on Sgemm followed by the bias, with and without gradients recorded, and the
// gradients must be those of the Sgemm path too.
using DiffuSharp.Kernels;
using DiffuSharp.NN.Clip;
using Xunit;

namespace DiffuSharp.Tests.NN;

[Collection("Parallelism")]
public sealed class ClipTextLinearPathTests
{
    [Fact]
    public void Clip_text_model_gives_the_bits_of_the_sgemm_path()
    {
        var config = new ClipTextConfig(VocabSize: 60, HiddenSize: 96, IntermediateSize: 200, NumHiddenLayers: 2, NumAttentionHeads: 4,
            MaxPositionEmbeddings: 20, BosTokenId: 58, EosTokenId: 59);
        var model = new ClipTextModel(config, new Rng(3));
        var rng = new Random(4);
        int[] ids = Enumerable.Range(0, 40).Select(i => i % 20 == 0 ? 58 : i % 20 > 12 ? 59 : rng.Next(1, 58)).ToArray();
        Assert.NotEqual(Gemm.KernelKind.Auto, Gemm.PickLinear(40, 200, 96));   // rows 2 × 20: the weight-rows path runs

        (float[] Y, float[] Grad) Run(Gemm.KernelKind kernel)
        {
            using var _ = KernelSwitches.With(s => s with { LinearKernel = kernel });
            float[] noGrad;
            using (Tensor.NoGrad()) noGrad = model.Forward(ids, 2).LastHiddenState.ToArray();
            foreach (var p in model.Parameters()) p.Grad = null;
            var y = model.Forward(ids, 2).LastHiddenState;
            Assert.True(noGrad.AsSpan().SequenceEqual(y.ToArray()), $"{kernel}: the forward differs with gradients recorded");
            (y * y).Sum().Backward();
            var fc1 = model.NamedParameters().First(p => p.Name.EndsWith("layers.0.mlp.fc1.weight", StringComparison.Ordinal)).Param;
            return (noGrad, fc1.Grad!.ToArray());
        }

        var fast = Run(Gemm.KernelKind.Auto);
        var sgemm = Run(Gemm.KernelKind.Portable);
        Assert.True(sgemm.Y.AsSpan().SequenceEqual(fast.Y), "last hidden state differs from the Sgemm path");
        Assert.True(sgemm.Grad.AsSpan().SequenceEqual(fast.Grad), "fc1's weight gradient differs from the Sgemm path");
    }
}

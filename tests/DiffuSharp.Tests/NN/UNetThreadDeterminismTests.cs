// A UNet forward and backward in training mode (dropout, class labels, scale-shift norm) gives the same bits
// whatever the thread count: every kernel on the path splits work without changing any summation order.
using DiffuSharp;
using DiffuSharp.Kernels;
using DiffuSharp.NN;
using Xunit;
namespace DiffuSharp.Tests.NN;
[Collection("Parallelism")]
public class UNetThreadDeterminismTests
{
    static (float[] Out, float[] Grads) Run(int threads)
    {
        int old = Parallelism.MaxThreads;
        try
        {
            Parallelism.MaxThreads = threads;
            var cfg = new UNetConfig(InChannels: 1, ModelChannels: 32, OutChannels: 1, NumResBlocks: 1, AttentionResolutions: [2], ChannelMult: [1, 2], NumHeads: 1, Dropout: 0.1f, NumClasses: 3, UseScaleShiftNorm: true);
            var m = new UNetModel(cfg, new Rng(3));
            m.PackParameters();
            m.Train();
            var rng = new Rng(5);
            var x = Tensor.RandN([4, 1, 16, 16], rng);
            var t = Tensor.FromArray([1f, 50f, 300f, 999f], 4);
            var y = m.Forward(x, t, classes: [0, 2, 1, 2], rng: new Rng(9));
            y.Square().Sum().Backward();
            return (y.ToArray(), (float[])m.Flat!.Grads.Clone());
        }
        finally { Parallelism.MaxThreads = old; }
    }
    [Fact]
    public void Training_mode_forward_and_backward_give_the_same_bits_on_1_and_2_threads()
    {
        var a = Run(1); var b = Run(2);
        for (int i = 0; i < a.Out.Length; i++) Assert.True(a.Out[i] == b.Out[i], $"out[{i}] {a.Out[i]:G9} vs {b.Out[i]:G9}");
        for (int i = 0; i < a.Grads.Length; i++) Assert.True(a.Grads[i] == b.Grads[i], $"grad[{i}] {a.Grads[i]:G9} vs {b.Grads[i]:G9}");
    }
}

// The components' call contracts: wrong shapes and missing or extra arguments are ArgumentExceptions naming the
// shapes; several ControlNets' residuals sum element by element (diffusers' MultiControlNetModel); a ControlNet's
// residuals at conditioning scale s are s times those at scale 1.
using DiffuSharp.NN.Diffusers;
using Xunit;

namespace DiffuSharp.Tests.NN.Diffusers;

public sealed class DiffusersApiTests
{
    static string Fixture(string name) => Path.Combine(TestPaths.Diffusers, name);

    [Fact]
    public void UNet2DCondition_rejects_wrong_shapes_and_half_given_residuals()
    {
        var unet = ComponentLoader.LoadUNet2DCondition(Fixture("unet2d_condition"));
        var rng = new Rng(1);
        var sample = Tensor.RandN([1, 4, 8, 8], rng);
        var t = Tensor.FromArray([10f], 1);
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(sample, t, Tensor.RandN([1, 3, 16], rng)));
        Assert.Contains("(1, 3, 16)", e.Message);
        e = Assert.Throws<ArgumentException>(() => unet.Forward(Tensor.RandN([1, 3, 8, 8], rng), t, Tensor.RandN([1, 3, 32], rng)));
        Assert.Contains("(1, 3, 8, 8)", e.Message);
        e = Assert.Throws<ArgumentException>(() => unet.Forward(sample, t, Tensor.RandN([1, 3, 32], rng), midBlockAdditionalResidual: Tensor.Zeros(1, 64, 4, 4)));
        Assert.Contains("both", e.Message);
        e = Assert.Throws<ArgumentException>(() => unet.Forward(sample, Tensor.FromArray([1f, 2f, 3f], 3), Tensor.RandN([1, 3, 32], rng)));
        Assert.Contains("timesteps", e.Message);
    }

    [Fact]
    public void ControlNet_residuals_scale_linearly_and_several_nets_sum()
    {
        var net = ComponentLoader.LoadControlNet(Fixture("controlnet"));
        var rng = new Rng(2);
        var sample = Tensor.RandN([1, 4, 8, 8], rng);
        var context = Tensor.RandN([1, 5, 32], rng);
        var cond = Tensor.Rand([1, 3, 64, 64], rng);
        var t = Tensor.FromArray([321f], 1);
        using var _ = Tensor.NoGrad();
        var one = net.Forward(sample, t, context, cond);
        var scaled = net.Forward(sample, t, context, cond, conditioningScale: 0.25);
        var sum = ControlNetOutput.Sum([one, scaled]);
        Assert.Equal(one.DownBlockResSamples.Count, sum.DownBlockResSamples.Count);
        for (int i = 0; i <= one.DownBlockResSamples.Count; i++)
        {
            var a = (i < one.DownBlockResSamples.Count ? one.DownBlockResSamples[i] : one.MidBlockResSample).ToArray();
            var s = (i < one.DownBlockResSamples.Count ? scaled.DownBlockResSamples[i] : scaled.MidBlockResSample).ToArray();
            var total = (i < one.DownBlockResSamples.Count ? sum.DownBlockResSamples[i] : sum.MidBlockResSample).ToArray();
            GradCheck.AssertClose(a.Select(v => 0.25f * v).ToArray(), s, rtol: 1e-6, atol: 1e-9, $"residual {i} at scale 0.25");
            GradCheck.AssertClose(a.Zip(s, (x, y) => x + y).ToArray(), total, rtol: 1e-6, atol: 1e-9, $"summed residual {i}");
        }
        var e = Assert.Throws<ArgumentException>(() => net.Forward(sample, t, context, Tensor.Rand([1, 3, 32, 32], rng)));
        Assert.Contains("control image", e.Message);
    }

    [Fact]
    public void Scoped_no_grad_forwards_give_the_same_bits_as_unscoped_ones()
    {
        var rng = new Rng(3);
        var vae = ComponentLoader.LoadAutoencoderKL(Fixture("autoencoder_kl"));
        var unet = ComponentLoader.LoadUNet2DCondition(Fixture("unet2d_condition"));
        var image = Tensor.RandN([1, 3, 16, 16], rng);
        var latents = Tensor.RandN([1, 4, 8, 8], rng);
        var context = Tensor.RandN([1, 3, 32], rng);
        var t = Tensor.FromArray([77f], 1);
        float[] Run(bool scoped, Func<Tensor> f)
        {
            using var _ = Tensor.NoGrad();
            if (!scoped) return f().ToArray();
            using var scope = TensorScope.Begin();
            return f().ToArray();
        }
        Assert.Equal(Run(false, () => vae.Forward(image)), Run(true, () => vae.Forward(image)));
        Assert.Equal(Run(false, () => unet.Forward(latents, t, context)), Run(true, () => unet.Forward(latents, t, context)));
    }
}

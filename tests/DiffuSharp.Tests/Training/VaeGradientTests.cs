// The whole AutoencoderKL (encoder, posterior sample, decoder, with the mid-block attention and the stride-2
// downsampling) trained by VaeLoss: its gradients with respect to the input and to parameters of every kind agree
// with central finite differences, for L1 and L2 reconstruction with a large KL weight so both terms count.
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

public sealed class VaeGradientTests
{
    internal static AutoencoderKLConfig Tiny => new()
    {
        InChannels = 1, OutChannels = 1, BlockOutChannels = [8, 8], LayersPerBlock = 1, LatentChannels = 2,
        NormNumGroups = 4, SampleSize = 8,
    };

    // L2: the loss is smooth in every weight. (L1's |x̂ − x| has a kink at every pixel, which a ±1e-2 step of a weight
    // feeding all pixels crosses somewhere, so its derivative is checked on Abs alone, away from 0.)
    [Fact]
    public void Vae_loss_gradients_match_finite_differences()
    {
        const ReconstructionLoss kind = ReconstructionLoss.L2;
        var rng = new Rng(3);
        var vae = new AutoencoderKL(Tiny, rng);
        var x = Tensor.Rand([2, 1, 8, 8], rng, -1f, 1f);
        var noise = Tensor.RandN([2, 2, 4, 4], rng);
        var named = vae.NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        // One parameter of each kind: first and last convolutions, a norm, the attention, the quant convs.
        string[] pick =
        [
            "encoder.conv_in.weight", "encoder.down_blocks.0.resnets.0.norm1.weight", "encoder.down_blocks.0.downsamplers.0.conv.weight",
            "encoder.mid_block.attentions.0.to_q.weight", "encoder.conv_out.bias", "quant_conv.weight", "post_quant_conv.weight",
            "decoder.up_blocks.0.upsamplers.0.conv.weight", "decoder.mid_block.resnets.1.conv2.weight", "decoder.conv_out.weight",
        ];
        foreach (var name in pick) Assert.True(named.ContainsKey(name), $"no parameter {name}");
        var inputs = new[] { x }.Concat(pick.Select(n => named[n])).ToArray();
        GradCheck.Check(_ => VaeLoss.Compute(vae, x, noise, kind, klWeight: 0.1).Loss.Reshape(1), inputs, rng, eps: 1e-2, rtol: 2e-2, atol: 2e-3, samples: 12);
    }

    [Fact]
    public void Abs_gradient_is_the_sign()
    {
        var rng = new Rng(5);
        var d = Tensor.Rand([64], rng, 0.05f, 1f);
        var sign = Tensor.Rand([64], rng, 0f, 1f).ToArray();
        var data = d.Data;
        for (int i = 0; i < 64; i++) if (sign[i] < 0.5f) data[i] = -data[i];        // both signs, |d| ≥ 0.05 > eps
        GradCheck.Check(t => VaeLoss.Abs(t[0]), [d], rng, eps: 1e-2);
        Assert.Equal(d.ToArray().Select(Math.Abs), VaeLoss.Abs(d).ToArray());
    }

    [Fact]
    public void L1_loss_is_the_sum_of_absolute_errors_per_image()
    {
        var rng = new Rng(6);
        var vae = new AutoencoderKL(Tiny, rng);
        var x = Tensor.Rand([2, 1, 8, 8], rng, -1f, 1f);
        var terms = VaeLoss.Compute(vae, x, Tensor.RandN([2, 2, 4, 4], rng), ReconstructionLoss.L1, klWeight: 0);
        double sae = terms.Reconstruction.ToArray().Zip(x.ToArray(), (a, b) => Math.Abs((double)a - b)).Sum();
        Assert.True(Math.Abs(sae / 2 - terms.Loss.Item()) < 1e-4 * sae, $"{sae / 2} vs {terms.Loss.Item()}");
    }

    [Fact]
    public void Kl_term_is_the_closed_form_of_a_diagonal_gaussian()
    {
        var rng = new Rng(4);
        var vae = new AutoencoderKL(Tiny, rng);
        var x = Tensor.Rand([3, 1, 8, 8], rng, -1f, 1f);
        var noise = Tensor.RandN([3, 2, 4, 4], rng);
        var terms = VaeLoss.Compute(vae, x, noise, ReconstructionLoss.L2, klWeight: 0.5);
        var post = vae.Encode(x);
        float[] mu = post.Mean.ToArray(), lv = post.LogVar.ToArray(), rec = terms.Reconstruction.ToArray(), xs = x.ToArray();
        double kl = 0, se = 0;
        for (int i = 0; i < mu.Length; i++) kl += 0.5 * (mu[i] * mu[i] + Math.Exp(lv[i]) - 1 - lv[i]);
        for (int i = 0; i < xs.Length; i++) se += (rec[i] - xs[i]) * (double)(rec[i] - xs[i]);
        static void Near(double expected, double actual) => Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Abs(expected), $"expected {expected}, got {actual}");
        Near(kl / 3, terms.Kl.Item());
        Near(se / 3, terms.Rec.Item());
        Near(se / 3 + 0.5 * kl / 3, terms.Loss.Item());
        // The decoder saw μ + σ·ε.
        var z = (post.Mean + post.Std * noise);
        Assert.Equal(vae.Decode(z).ToArray(), rec);
    }
}

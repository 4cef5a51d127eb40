// The diffusers components are differentiable end to end (the next step trains them): gradients of a random
// projection of the output with respect to inputs and to parameters of every kind (attention, GEGLU feed-forward,
// LayerNorm, GroupNorm, convolutions, the time embedding) match central finite differences. And the query-blocked
// attention used without gradients gives what the unblocked one gives.
using DiffuSharp.NN.Diffusers;
using Xunit;

namespace DiffuSharp.Tests.NN.Diffusers;

public sealed class DiffusersGradTests
{
    static string Fixture(string name) => Path.Combine(TestPaths.Diffusers, name);

    [Fact]
    public void UNet2DCondition_gradients_match_finite_differences()
    {
        var unet = ComponentLoader.LoadUNet2DCondition(Fixture("unet2d_condition"));
        var rng = new Rng(11);
        var sample = Tensor.RandN([1, 4, 8, 8], rng);
        var context = Tensor.RandN([1, 3, 32], rng);
        var t = Tensor.FromArray([412f], 1);
        var p = unet.NamedParameters().ToDictionary(x => x.Name, x => x.Param);
        Tensor[] inputs =
        [
            sample, context,
            p["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"],
            p["down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"],
            p["mid_block.attentions.0.transformer_blocks.0.norm1.weight"],
            p["up_blocks.1.resnets.0.conv_shortcut.weight"],
            p["time_embedding.linear_1.weight"],
        ];
        GradCheck.Check(xs => unet.Forward(xs[0], t, xs[1]), inputs, rng, eps: 1e-2, rtol: 2e-2, atol: 1e-3, samples: 12);
    }

    [Fact]
    public void AutoencoderKL_gradients_match_finite_differences()
    {
        var vae = ComponentLoader.LoadAutoencoderKL(Fixture("autoencoder_kl"));
        var rng = new Rng(12);
        var image = Tensor.RandN([1, 3, 8, 8], rng);
        var p = vae.NamedParameters().ToDictionary(x => x.Name, x => x.Param);
        Tensor[] inputs =
        [
            image,
            p["encoder.down_blocks.0.downsamplers.0.conv.weight"],
            p["encoder.mid_block.attentions.0.to_q.weight"],
            p["decoder.up_blocks.0.resnets.0.norm1.bias"],
        ];
        GradCheck.Check(xs => vae.Forward(xs[0]), inputs, rng, eps: 1e-2, rtol: 2e-2, atol: 1e-3, samples: 12);
    }

    [Fact]
    public void Query_blocked_attention_without_gradients_equals_the_whole()
    {
        var rng = new Rng(13);
        var attn = Attention.Transformer(8, null, heads: 2, dimHead: 4, rng);
        int tokens = 1100;                                                   // 1100² scores > ScoreBudget: two query blocks
        Assert.True((long)tokens * tokens > Attention.ScoreBudget);
        var x = Tensor.RandN([1, tokens, 8], rng).RequireGrad();
        var whole = attn.Forward(x).ToArray();                               // recording gradients: one block
        float[] blocked;
        using (Tensor.NoGrad()) blocked = attn.Forward(x).ToArray();
        GradCheck.AssertClose(whole, blocked, rtol: 1e-6, atol: 1e-7, "blocked attention");
    }
}

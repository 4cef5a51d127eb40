// A text encoder trained jointly with a UNet needs gradients through CLIPTextModel: token and position embeddings,
// causal self-attention, LayerNorm, QuickGELU / GELU MLPs, the final norm. Checked against central finite differences
// on a tiny model (2 layers, width 16, 2 heads), for parameters of every kind, with a random upstream weight on the
// last hidden state plus another on the pooled output.
using DiffuSharp.NN.Clip;
using Xunit;

namespace DiffuSharp.Tests.NN;

public sealed class ClipTextGradientTests
{
    [Theory, InlineData(ClipActivation.QuickGelu), InlineData(ClipActivation.Gelu)]
    public void Clip_text_model_gradients_match_finite_differences(ClipActivation act)
    {
        var rng = new Rng(11);
        var config = new ClipTextConfig(VocabSize: 40, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 2,
            MaxPositionEmbeddings: 8, HiddenAct: act, BosTokenId: 38, EosTokenId: 39);
        var model = new ClipTextModel(config, rng);
        model.Train();
        int[] ids = [38, 5, 17, 3, 39, 39, 39, 39, 38, 22, 9, 39, 39, 39, 39, 39];         // 2 prompts of 8, eos-padded
        var named = model.NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        string[] pick =
        [
            "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
            "text_model.encoder.layers.0.layer_norm1.weight", "text_model.encoder.layers.0.self_attn.q_proj.weight",
            "text_model.encoder.layers.0.self_attn.k_proj.bias", "text_model.encoder.layers.0.self_attn.v_proj.weight",
            "text_model.encoder.layers.1.self_attn.out_proj.weight", "text_model.encoder.layers.1.mlp.fc1.weight",
            "text_model.encoder.layers.1.mlp.fc2.bias", "text_model.final_layer_norm.weight",
        ];
        foreach (var name in pick) Assert.True(named.ContainsKey(name), $"no parameter {name}");
        var wPooled = Tensor.RandN([2, 16], new Rng(12));
        GradCheck.Check(_ =>
        {
            var o = model.Forward(ids, 2);
            return Tensor.Concat([o.LastHiddenState.Reshape(2 * 8 * 16), (o.PoolerOutput * wPooled).Reshape(32)], 0);
        }, pick.Select(n => named[n]).ToArray(), rng, eps: 1e-2, rtol: 2e-2, atol: 2e-3, samples: 16);
    }
}

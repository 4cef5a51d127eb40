// Writes a ControlNetModel as a diffusers component folder: config.json with every key diffusers 0.27.2's
// ControlNetModel.__init__ registers (what its save_pretrained writes) and diffusion_pytorch_model.safetensors with
// diffusers' parameter names, so that ComponentLoader.LoadControlNet, `txt2img --controlnet DIR` and diffusers'
// ControlNetModel.from_pretrained all load it.
using System.Text.Json.Nodes;

namespace DiffuSharp.NN.Diffusers;

/// <summary>Writes a ControlNetModel as a diffusers component folder (config.json with diffusers' keys, the weights).</summary>
public static class ControlNetFolder
{
    /// <summary>config.json's object for this config (num_attention_heads null and the head counts in
    /// attention_head_dim, as from_unet copies them from a UNet2DConditionModel).</summary>
    public static JsonObject ConfigJson(ControlNetConfig c) => new()
    {
        ["_class_name"] = "ControlNetModel",
        ["_diffusers_version"] = "0.27.2",
        ["act_fn"] = UNet2DConditionFolder.ActName(c.ActFn),
        ["addition_embed_type"] = null,
        ["addition_embed_type_num_heads"] = 64,
        ["addition_time_embed_dim"] = null,
        ["attention_head_dim"] = UNet2DConditionFolder.Ints(c.NumHeads),
        ["block_out_channels"] = UNet2DConditionFolder.Ints(c.BlockOutChannels),
        ["class_embed_type"] = null,
        ["conditioning_channels"] = c.ConditioningChannels,
        ["conditioning_embedding_out_channels"] = UNet2DConditionFolder.Ints(c.ConditioningEmbeddingOutChannels),
        ["controlnet_conditioning_channel_order"] = c.BgrConditioning ? "bgr" : "rgb",
        ["cross_attention_dim"] = c.CrossAttentionDim,
        ["down_block_types"] = UNet2DConditionFolder.Names(c.DownBlockTypes),
        ["downsample_padding"] = c.DownsamplePadding,
        ["encoder_hid_dim"] = null,
        ["encoder_hid_dim_type"] = null,
        ["flip_sin_to_cos"] = c.FlipSinToCos,
        ["freq_shift"] = c.FreqShift,
        ["global_pool_conditions"] = c.GlobalPoolConditions,
        ["in_channels"] = c.InChannels,
        ["layers_per_block"] = c.LayersPerBlock,
        ["mid_block_scale_factor"] = c.MidBlockScaleFactor,
        ["mid_block_type"] = c.MidBlockType.ToString(),
        ["norm_eps"] = c.NormEps,
        ["norm_num_groups"] = c.NormNumGroups,
        ["num_attention_heads"] = null,
        ["num_class_embeds"] = c.NumClassEmbeds,
        ["only_cross_attention"] = new JsonArray(c.OnlyCrossAttention.Select(v => (JsonNode)v).ToArray()),
        ["projection_class_embeddings_input_dim"] = null,
        ["resnet_time_scale_shift"] = UNet2DConditionFolder.ShiftName(c.ResnetTimeScaleShift),
        ["transformer_layers_per_block"] = UNet2DConditionFolder.Ints(c.TransformerLayersPerBlock),
        ["upcast_attention"] = c.UpcastAttention,
        ["use_linear_projection"] = c.UseLinearProjection,
    };

    /// <summary>Writes config.json and the weights into <paramref name="folder"/> (created if needed), each file atomically.</summary>
    public static void Save(string folder, ControlNetConfig config, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        IReadOnlyDictionary<string, string>? metadata = null) => UNet2DConditionFolder.SaveComponent(folder, ConfigJson(config), weights, metadata);

}

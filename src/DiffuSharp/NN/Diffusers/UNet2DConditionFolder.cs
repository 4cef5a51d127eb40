// Writes a UNet2DConditionModel as a diffusers component folder: config.json with every key diffusers 0.27.2's
// UNet2DConditionModel.__init__ registers (what its save_pretrained writes; per-block values as lists) and
// diffusion_pytorch_model.safetensors with diffusers' parameter names, so that ComponentLoader.LoadUNet2DCondition
// and diffusers' UNet2DConditionModel.from_pretrained both load it. The ControlNet writer below shares the helpers.
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;

namespace DiffuSharp.NN.Diffusers;

/// <summary>Writes a UNet2DConditionModel as a diffusers component folder (config.json with every key diffusers 0.27.2
/// registers, and diffusion_pytorch_model.safetensors under diffusers' names) that <see cref="ComponentLoader"/> and
/// diffusers' from_pretrained both load.</summary>
public static class UNet2DConditionFolder
{
    /// <summary>The file names of a diffusers component folder: "config.json" and
    /// "diffusion_pytorch_model.safetensors".</summary>
    public const string ConfigFile = "config.json", WeightsFile = "diffusion_pytorch_model.safetensors";

    /// <summary>config.json's object for this config.</summary>
    public static JsonObject ConfigJson(UNet2DConditionConfig c) => new()
    {
        ["_class_name"] = "UNet2DConditionModel",
        ["_diffusers_version"] = "0.27.2",
        ["act_fn"] = ActName(c.ActFn),
        ["addition_embed_type"] = null,
        ["addition_embed_type_num_heads"] = 64,
        ["addition_time_embed_dim"] = null,
        ["attention_head_dim"] = Ints(c.NumHeads),
        ["attention_type"] = "default",
        ["block_out_channels"] = Ints(c.BlockOutChannels),
        ["center_input_sample"] = c.CenterInputSample,
        ["class_embed_type"] = null,
        ["class_embeddings_concat"] = false,
        ["conv_in_kernel"] = c.ConvInKernel,
        ["conv_out_kernel"] = c.ConvOutKernel,
        ["cross_attention_dim"] = Ints(c.CrossAttentionDim),
        ["cross_attention_norm"] = null,
        ["down_block_types"] = Names(c.DownBlockTypes),
        ["downsample_padding"] = c.DownsamplePadding,
        ["dropout"] = c.Dropout,
        ["dual_cross_attention"] = false,
        ["encoder_hid_dim"] = null,
        ["encoder_hid_dim_type"] = null,
        ["flip_sin_to_cos"] = c.FlipSinToCos,
        ["freq_shift"] = c.FreqShift,
        ["in_channels"] = c.InChannels,
        ["layers_per_block"] = Ints(c.LayersPerBlock),
        ["mid_block_only_cross_attention"] = null,
        ["mid_block_scale_factor"] = c.MidBlockScaleFactor,
        ["mid_block_type"] = c.MidBlockType == MidBlockType.None ? null : c.MidBlockType.ToString(),
        ["norm_eps"] = c.NormEps,
        ["norm_num_groups"] = c.NormNumGroups,
        ["num_attention_heads"] = null,
        ["num_class_embeds"] = c.NumClassEmbeds,
        ["only_cross_attention"] = new JsonArray(c.OnlyCrossAttention.Select(v => (JsonNode)v).ToArray()),
        ["out_channels"] = c.OutChannels,
        ["projection_class_embeddings_input_dim"] = null,
        ["resnet_out_scale_factor"] = c.ResnetOutScaleFactor,
        ["resnet_skip_time_act"] = c.ResnetSkipTimeAct,
        ["resnet_time_scale_shift"] = ShiftName(c.ResnetTimeScaleShift),
        ["reverse_transformer_layers_per_block"] = c.ReverseTransformerLayersPerBlock is { } r ? Nested(r) : null,
        ["sample_size"] = c.SampleSize,
        ["time_cond_proj_dim"] = null,
        ["time_embedding_act_fn"] = c.TimeEmbeddingActFn is { } ta ? ActName(ta) : null,
        ["time_embedding_dim"] = c.TimeEmbeddingDim,
        ["time_embedding_type"] = "positional",
        ["timestep_post_act"] = c.TimestepPostAct is { } tp ? ActName(tp) : null,
        ["transformer_layers_per_block"] = PerBlock(c.TransformerLayersPerBlock),
        ["up_block_types"] = Names(c.UpBlockTypes),
        ["upcast_attention"] = c.UpcastAttention,
        ["use_linear_projection"] = c.UseLinearProjection,
    };

    /// <summary>Writes config.json and the weights into <paramref name="folder"/> (created if needed), each file atomically.</summary>
    public static void Save(string folder, UNet2DConditionConfig config, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        IReadOnlyDictionary<string, string>? metadata = null) => SaveComponent(folder, ConfigJson(config), weights, metadata);

    /// <summary>A diffusers component folder: <paramref name="config"/> as config.json, the weights as
    /// diffusion_pytorch_model.safetensors (metadata "format": "pt", as diffusers writes).</summary>
    public static void SaveComponent(string folder, JsonObject config, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFile), weights, meta);
        AtomicFile.WriteJson(Path.Combine(folder, ConfigFile), config);
    }

    internal static string ActName(Activation a) => a switch
    {
        Activation.Silu => "silu", Activation.Gelu => "gelu", Activation.Relu => "relu",
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    internal static string ShiftName(TimeScaleShift s) => s == TimeScaleShift.ScaleShift ? "scale_shift" : "default";

    internal static JsonArray Ints(IEnumerable<int> values) => new(values.Select(v => (JsonNode)v).ToArray());

    internal static JsonArray Names<T>(IEnumerable<T> values) where T : struct, Enum => new(values.Select(v => (JsonNode)v.ToString()).ToArray());

    static JsonArray Nested(int[][] values) => new(values.Select(v => (JsonNode)Ints(v)).ToArray());

    // One count per block where a block's layers agree (diffusers refuses nested lists without their reverse).
    static JsonArray PerBlock(int[][] values)
        => values.All(v => v.Distinct().Count() <= 1) ? Ints(values.Select(v => v.Length == 0 ? 1 : v[0])) : Nested(values);
}

// Writes a CLIPTextModel as a transformers folder: config.json with CLIPTextConfig's keys (what save_pretrained
// writes for a text model) and model.safetensors with transformers' parameter names (the module's own), so that
// ClipTextModel.FromFolder and transformers' CLIPTextModel.from_pretrained both load it.
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;

namespace DiffuSharp.NN.Clip;

/// <summary>Writes a CLIP text model as a transformers folder (config.json and model.safetensors with transformers'
/// parameter names), which <see cref="ClipTextModel.FromFolder"/> and transformers' CLIPTextModel.from_pretrained both
/// load.</summary>
public static class ClipTextFolder
{
    /// <summary>The file names of a transformers CLIP text model folder: "config.json" and
    /// "model.safetensors".</summary>
    public const string ConfigFile = "config.json", WeightsFile = "model.safetensors";

    /// <summary>config.json's object for this config.</summary>
    public static JsonObject ConfigJson(ClipTextConfig c) => new()
    {
        ["architectures"] = new JsonArray("CLIPTextModel"),
        ["attention_dropout"] = 0.0,
        ["bos_token_id"] = c.BosTokenId,
        ["dropout"] = 0.0,
        ["eos_token_id"] = c.EosTokenId,
        ["hidden_act"] = c.HiddenAct == ClipActivation.QuickGelu ? "quick_gelu" : "gelu",
        ["hidden_size"] = c.HiddenSize,
        ["initializer_factor"] = 1.0,
        ["initializer_range"] = 0.02,
        ["intermediate_size"] = c.IntermediateSize,
        ["layer_norm_eps"] = c.LayerNormEps,
        ["max_position_embeddings"] = c.MaxPositionEmbeddings,
        ["model_type"] = "clip_text_model",
        ["num_attention_heads"] = c.NumAttentionHeads,
        ["num_hidden_layers"] = c.NumHiddenLayers,
        ["pad_token_id"] = c.PadTokenId,
        ["projection_dim"] = c.ProjectionDim,
        ["torch_dtype"] = "float32",
        ["transformers_version"] = "4.39.0",
        ["vocab_size"] = c.VocabSize,
    };

    /// <summary>Writes config.json and model.safetensors into <paramref name="folder"/> (created if needed), each atomically.</summary>
    public static void Save(string folder, ClipTextConfig config, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFile), weights, meta);
        AtomicFile.WriteJson(Path.Combine(folder, ConfigFile), ConfigJson(config));
    }
}

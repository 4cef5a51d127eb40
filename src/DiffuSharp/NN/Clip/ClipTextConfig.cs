// transformers' CLIPTextConfig (models/clip/configuration_clip.py, transformers 4.39) as an immutable record, read
// from the `config.json` that `save_pretrained` writes beside `model.safetensors`. Every key CLIPTextConfig reads is
// bound (defaults as CLIPTextConfig's); the generic PretrainedConfig keys a saved config carries (architectures,
// torch_dtype, return_dict, …) are accepted and ignored; any other key, and a value we do not support, is an
// InvalidDataException naming the key and the file. projection_dim belongs to the projection head, which
// CLIPTextModel does not have: it is read and ignored.
using System.Text.Json;

namespace DiffuSharp.NN.Clip;

/// <summary>CLIP's MLP activation: hidden_act "quick_gelu" (x·σ(1.702x), OpenAI's CLIP and SD 1.x) or "gelu"
/// (exact erf GELU, OpenCLIP's ViT-H of SD 2.x).</summary>
public enum ClipActivation
{
    /// <summary>"quick_gelu": x·σ(1.702x), OpenAI's CLIP (SD 1.x).</summary>
    QuickGelu,
    /// <summary>"gelu": the exact erf GELU, OpenCLIP's ViT-H (SD 2.x).</summary>
    Gelu,
}

/// <summary>The keys of transformers' CLIPTextConfig that the text model uses.</summary>
public sealed record ClipTextConfig(
    int VocabSize = 49408,
    int HiddenSize = 512,
    int IntermediateSize = 2048,
    int NumHiddenLayers = 12,
    int NumAttentionHeads = 8,
    int MaxPositionEmbeddings = 77,
    ClipActivation HiddenAct = ClipActivation.QuickGelu,
    double LayerNormEps = 1e-5,
    int PadTokenId = 1,                  // CLIPTextConfig's default (not the tokenizer's): unused by the model
    int BosTokenId = 49406,
    int EosTokenId = 49407,              // 2 in configs saved before transformers PR #24773: pooling then takes argmax(ids)
    int ProjectionDim = 512)             // for CLIPTextModelWithProjection; ignored here
{
    /// <summary>Head size hidden_size / num_attention_heads.</summary>
    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Throws InvalidDataException naming the first impossible value and the source.</summary>
    public ClipTextConfig Validate(string source = "ClipTextConfig")
    {
        void Positive(int v, string key) { if (v <= 0) throw new InvalidDataException($"{source}: {key} must be positive, got {v}"); }
        Positive(VocabSize, "vocab_size"); Positive(HiddenSize, "hidden_size"); Positive(IntermediateSize, "intermediate_size");
        Positive(NumHiddenLayers, "num_hidden_layers"); Positive(NumAttentionHeads, "num_attention_heads");
        Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (HiddenSize % NumAttentionHeads != 0)
            throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        if (!(LayerNormEps > 0) || !double.IsFinite(LayerNormEps))
            throw new InvalidDataException($"{source}: layer_norm_eps must be a positive number, got {LayerNormEps}");
        return this;
    }

    /// <summary>Reads a transformers `config.json` of a CLIPTextModel.</summary>
    public static ClipTextConfig Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new FileNotFoundException($"text encoder config not found: {path}", path, e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses the JSON of a CLIPTextModel config; source names the file in error messages.</summary>
    public static ClipTextConfig Parse(string json, string source = "config.json")
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON: {e.Message}"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: expected a JSON object");
            IO.StrictJson.CheckText(doc.RootElement, source);
            var c = new ClipTextConfig();
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                var v = p.Value;
                c = p.Name switch
                {
                    "vocab_size" => c with { VocabSize = Int(v, p.Name, source) },
                    "hidden_size" => c with { HiddenSize = Int(v, p.Name, source) },
                    "intermediate_size" => c with { IntermediateSize = Int(v, p.Name, source) },
                    "num_hidden_layers" => c with { NumHiddenLayers = Int(v, p.Name, source) },
                    "num_attention_heads" => c with { NumAttentionHeads = Int(v, p.Name, source) },
                    "max_position_embeddings" => c with { MaxPositionEmbeddings = Int(v, p.Name, source) },
                    "hidden_act" => c with { HiddenAct = Activation(v, source) },
                    "layer_norm_eps" => c with { LayerNormEps = Number(v, p.Name, source) },
                    "pad_token_id" => c with { PadTokenId = Int(v, p.Name, source) },
                    "bos_token_id" => c with { BosTokenId = Int(v, p.Name, source) },
                    "eos_token_id" => c with { EosTokenId = Int(v, p.Name, source) },
                    "projection_dim" => c with { ProjectionDim = Int(v, p.Name, source) },
                    "attention_dropout" or "dropout" => ZeroDropout(c, v, p.Name, source),
                    "model_type" => Expect(c, v, p.Name, source, "clip_text_model"),
                    "architectures" => Architectures(c, v, source),
                    _ when Ignored.Contains(p.Name) => c,
                    _ => throw new InvalidDataException($"{source}: unknown key '{p.Name}' for a CLIPTextModel config"),
                };
            }
            return c.Validate(source);
        }
    }

    // PretrainedConfig's generic attributes (configuration_utils.py) and initialisation-only CLIPTextConfig keys: saved
    // configs carry them, none changes the forward pass of a CLIPTextModel in inference.
    static readonly HashSet<string> Ignored = new(StringComparer.Ordinal)
    {
        "_name_or_path", "_commit_hash", "_attn_implementation", "_attn_implementation_autoset", "transformers_version", "torch_dtype",
        "initializer_range", "initializer_factor", "return_dict", "output_hidden_states", "output_attentions", "torchscript",
        "use_bfloat16", "tf_legacy_loss", "pruned_heads", "tie_word_embeddings", "chunk_size_feed_forward", "is_encoder_decoder",
        "is_decoder", "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "max_length", "min_length",
        "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p",
        "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
        "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
        "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
        "begin_suppress_tokens", "finetuning_task", "id2label", "label2id", "tokenizer_class", "prefix", "sep_token_id",
        "decoder_start_token_id", "task_specific_params", "problem_type", "gradient_checkpointing", "use_cache",
    };

    static int Int(JsonElement v, string key, string source)
        => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i
            : throw new InvalidDataException($"{source}: {key} must be an integer, got {v.GetRawText()}");

    static double Number(JsonElement v, string key, string source)
        => v.ValueKind == JsonValueKind.Number ? v.GetDouble()
            : throw new InvalidDataException($"{source}: {key} must be a number, got {v.GetRawText()}");

    static ClipActivation Activation(JsonElement v, string source) => v.ValueKind == JsonValueKind.String ? v.GetString() switch
    {
        "quick_gelu" => ClipActivation.QuickGelu,
        "gelu" => ClipActivation.Gelu,
        var s => throw new InvalidDataException($"{source}: hidden_act '{s}' is not supported (supported: quick_gelu, gelu)"),
    } : throw new InvalidDataException($"{source}: hidden_act must be a string, got {v.GetRawText()}");

    static ClipTextConfig ZeroDropout(ClipTextConfig c, JsonElement v, string key, string source)
        => Number(v, key, source) == 0 ? c
            : throw new InvalidDataException($"{source}: {key} {v.GetRawText()} is not supported (only 0: the text model runs without dropout)");

    static ClipTextConfig Expect(ClipTextConfig c, JsonElement v, string key, string source, string expected)
        => v.ValueKind == JsonValueKind.String && v.GetString() == expected ? c
            : throw new InvalidDataException($"{source}: {key} {v.GetRawText()} is not supported (expected \"{expected}\")");

    static ClipTextConfig Architectures(ClipTextConfig c, JsonElement v, string source)
    {
        if (v.ValueKind == JsonValueKind.Null) return c;
        if (v.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{source}: architectures must be a list, got {v.GetRawText()}");
        foreach (var a in v.EnumerateArray())
            if (a.ValueKind != JsonValueKind.String || a.GetString() != "CLIPTextModel")
                throw new InvalidDataException($"{source}: architectures {v.GetRawText()} is not supported (only CLIPTextModel)");
        return c;
    }
}

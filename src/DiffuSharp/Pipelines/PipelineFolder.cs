// Writes a diffusers StableDiffusionPipeline folder: model_index.json (component → [library, class], the optional
// safety checker, feature extractor and image encoder as [null, null], requires_safety_checker false, as
// save_pretrained writes for a pipeline without them), unet/, text_encoder/, vae/, tokenizer/ (vocab.json and
// merges.txt copied, tokenizer_config.json with the padding length) and scheduler/. Trainers write it into a
// temporary folder that replaces the previous one whole (RunFolder.Replace), so a failed write never leaves half a
// pipeline.
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Pipelines;

/// <summary>The weights of one pipeline component, (name, shape, values) with the component's own parameter names.</summary>
public sealed record ComponentWeights<TConfig>(TConfig Config, IEnumerable<(string Name, int[] Shape, float[] Data)> Weights);

/// <summary>Writes a diffusers StableDiffusionPipeline folder (model_index.json, unet/, text_encoder/, vae/,
/// tokenizer/, scheduler/) that DiffuSharp and diffusers' from_pretrained both load.</summary>
public static class PipelineFolder
{
    /// <summary>Writes a complete StableDiffusionPipeline folder into <paramref name="folder"/> (created if needed).</summary>
    /// <param name="tokenizerFolder">a folder holding vocab.json and merges.txt (copied)</param>
    /// <param name="maxLength">the tokenizer's model_max_length (≤ the text encoder's max_position_embeddings)</param>
    public static void SaveStableDiffusion(string folder, ComponentWeights<UNet2DConditionConfig> unet, ComponentWeights<ClipTextConfig> textEncoder,
        ComponentWeights<AutoencoderKLConfig> vae, string tokenizerFolder, int maxLength, SchedulerConfig scheduler,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (maxLength > textEncoder.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"the tokenizer's length {maxLength} exceeds the text encoder's {textEncoder.Config.MaxPositionEmbeddings} positions");
        Directory.CreateDirectory(folder);
        UNet2DConditionFolder.Save(Path.Combine(folder, "unet"), unet.Config, unet.Weights, metadata);
        ClipTextFolder.Save(Path.Combine(folder, "text_encoder"), textEncoder.Config, textEncoder.Weights, metadata);
        VaeFolder.Save(Path.Combine(folder, "vae"), vae.Config, vae.Weights, metadata);
        SaveTokenizer(Path.Combine(folder, "tokenizer"), tokenizerFolder, maxLength);
        Directory.CreateDirectory(Path.Combine(folder, "scheduler"));
        scheduler.Save(Path.Combine(folder, "scheduler", "scheduler_config.json"));
        AtomicFile.WriteJson(Path.Combine(folder, "model_index.json"), new JsonObject
        {
            ["_class_name"] = "StableDiffusionPipeline",
            ["_diffusers_version"] = "0.27.2",
            ["feature_extractor"] = new JsonArray(null, null),
            ["image_encoder"] = new JsonArray(null, null),
            ["requires_safety_checker"] = false,
            ["safety_checker"] = new JsonArray(null, null),
            ["scheduler"] = new JsonArray("diffusers", scheduler.ClassName),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        });
    }

    /// <summary>A transformers CLIPTokenizer folder: vocab.json and merges.txt from <paramref name="source"/>, and the
    /// configs saying the special tokens and <paramref name="maxLength"/>.</summary>
    public static void SaveTokenizer(string folder, string source, int maxLength)
    {
        Directory.CreateDirectory(folder);
        foreach (var name in new[] { "vocab.json", "merges.txt" })
        {
            string from = Path.Combine(source, name);
            if (!File.Exists(from)) throw new FileNotFoundException($"tokenizer file not found: {from}", from);
            AtomicFile.Write(Path.Combine(folder, name), s => { using var f = File.OpenRead(from); f.CopyTo(s); });
        }
        JsonObject Special(string content) => new()
        {
            ["content"] = content, ["lstrip"] = false, ["normalized"] = true, ["rstrip"] = false, ["single_word"] = false,
        };
        AtomicFile.WriteJson(Path.Combine(folder, "special_tokens_map.json"), new JsonObject
        {
            ["bos_token"] = Special("<|startoftext|>"), ["eos_token"] = Special("<|endoftext|>"),
            ["pad_token"] = "<|endoftext|>", ["unk_token"] = Special("<|endoftext|>"),
        });
        JsonObject Added(string content) => new()
        {
            ["content"] = content, ["lstrip"] = false, ["normalized"] = true, ["rstrip"] = false, ["single_word"] = false, ["special"] = true,
        };
        AtomicFile.WriteJson(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["added_tokens_decoder"] = new JsonObject { ["49406"] = Added("<|startoftext|>"), ["49407"] = Added("<|endoftext|>") },
            ["bos_token"] = "<|startoftext|>",
            ["clean_up_tokenization_spaces"] = true,
            ["eos_token"] = "<|endoftext|>",
            ["errors"] = "replace",
            ["model_max_length"] = maxLength,
            ["pad_token"] = "<|endoftext|>",
            ["tokenizer_class"] = "CLIPTokenizer",
            ["unk_token"] = "<|endoftext|>",
        });
    }
}

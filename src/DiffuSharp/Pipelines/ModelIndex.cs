// A diffusers pipeline folder's `model_index.json` (diffusers 0.27's DiffusionPipeline.save_pretrained): "_class_name"
// (the pipeline class), "_diffusers_version", underscore-prefixed and plain scalar settings (requires_safety_checker),
// and one entry per component, [library, class] — [null, null] for a component left out (safety_checker,
// feature_extractor). A MultiControlNetModel, ["controlnet", "MultiControlNetModel"], is saved as the folders
// controlnet, controlnet_1, controlnet_2, … and loaded for as long as they exist. For each component the folder and
// the files its class needs are checked when asked for, and a missing one is an error naming it.
using System.Text.Json;
using DiffuSharp.IO;

namespace DiffuSharp.Pipelines;

/// <summary>One component of a pipeline folder.</summary>
/// <param name="Name">the key in model_index.json ("unet", "controlnet_1", …)</param>
/// <param name="Library">"diffusers", "transformers" (or "controlnet" for a MultiControlNet member)</param>
/// <param name="ClassName">"UNet2DConditionModel", "CLIPTextModel", "PNDMScheduler", …</param>
/// <param name="Folder">its sub-folder</param>
public sealed record PipelineComponent(string Name, string Library, string ClassName, string Folder)
{
    /// <summary>A scheduler: config in scheduler_config.json, no weights.</summary>
    public bool IsScheduler => ClassName.EndsWith("Scheduler", StringComparison.Ordinal) || ClassName.EndsWith("Solver", StringComparison.Ordinal);

    /// <summary>A tokenizer: vocab.json + merges.txt, no weights.</summary>
    public bool IsTokenizer => ClassName.Contains("Tokenizer", StringComparison.Ordinal);

    /// <summary>The config file: scheduler_config.json, tokenizer_config.json or config.json.</summary>
    public string ConfigPath => Path.Combine(Folder, IsScheduler ? "scheduler_config.json" : IsTokenizer ? "tokenizer_config.json" : "config.json");

    /// <summary>The weights file: model.safetensors for transformers models, diffusion_pytorch_model[.variant].safetensors
    /// for diffusers models.</summary>
    public string WeightsPath(string? variant = null)
        => Path.Combine(Folder, (Library == "transformers" ? "model" : "diffusion_pytorch_model") + (variant is null ? "" : "." + variant) + ".safetensors");
}

/// <summary>A parsed model_index.json and the components it names.</summary>
public sealed class ModelIndex : IPipelineSource
{
    readonly Dictionary<string, PipelineComponent> _components;

    /// <summary>The pipeline folder.</summary>
    public string Root { get; }
    /// <summary>"_class_name": StableDiffusionPipeline, StableDiffusionControlNetPipeline, …</summary>
    public string ClassName { get; }
    /// <summary>"_diffusers_version": the diffusers version that wrote the folder; null when absent.</summary>
    public string? DiffusersVersion { get; }
    /// <summary>Components given as [null, null] (not part of this pipeline).</summary>
    public IReadOnlyList<string> Absent { get; }
    /// <summary>Other top-level settings, e.g. requires_safety_checker.</summary>
    public IReadOnlyDictionary<string, JsonElement> Settings { get; }

    ModelIndex(string root, string className, string? version, Dictionary<string, PipelineComponent> components,
        List<string> absent, Dictionary<string, JsonElement> settings)
        => (Root, ClassName, DiffusersVersion, _components, Absent, Settings) = (root, className, version, components, absent, settings);

    ModelIndex IPipelineSource.Index => this;

    ITensorSource IPipelineSource.Weights(string component) => Weights(component);

    /// <summary>The config file of a component, checked to exist.</summary>
    public string ConfigPath(string component) => Require(component).ConfigPath;

    /// <summary>The present components by name (a MultiControlNet's members as controlnet, controlnet_1, …).</summary>
    public IReadOnlyDictionary<string, PipelineComponent> Components => _components;

    /// <summary>The ControlNets in order: controlnet, then controlnet_1, controlnet_2, … for a MultiControlNet.</summary>
    public IReadOnlyList<PipelineComponent> ControlNets
        => [.. _components.Values.Where(c => c.Name == "controlnet" || c.Name.StartsWith("controlnet_", StringComparison.Ordinal))
            .OrderBy(c => c.Name == "controlnet" ? 0 : int.Parse(c.Name["controlnet_".Length..]))];

    /// <summary>Reads &lt;folder&gt;/model_index.json.</summary>
    public static ModelIndex Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"pipeline folder not found: {folder}");
        string path = Path.Combine(folder, "model_index.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{folder} is not a diffusers pipeline folder: model_index.json not found", path);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: expected a JSON object");
            IO.StrictJson.CheckText(root, path);
            string className = root.TryGetProperty("_class_name", out var cn) && cn.ValueKind == JsonValueKind.String ? cn.GetString()!
                : throw new InvalidDataException($"{path}: _class_name (the pipeline class) is missing");
            string? version = root.TryGetProperty("_diffusers_version", out var dv) && dv.ValueKind == JsonValueKind.String ? dv.GetString() : null;
            var components = new Dictionary<string, PipelineComponent>(StringComparer.Ordinal);
            var absent = new List<string>();
            var settings = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var p in root.EnumerateObject())
            {
                if (p.Name.StartsWith('_')) continue;
                var v = p.Value;
                if (v.ValueKind != JsonValueKind.Array) { settings[p.Name] = v.Clone(); continue; }
                if (v.GetArrayLength() != 2)
                    throw new InvalidDataException($"{path}: component '{p.Name}' must be [library, class], got {v.GetRawText()}");
                var (lib, cls) = (v[0], v[1]);
                if (lib.ValueKind == JsonValueKind.Null && cls.ValueKind == JsonValueKind.Null) { absent.Add(p.Name); continue; }
                if (lib.ValueKind != JsonValueKind.String || cls.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{path}: component '{p.Name}' must be [library, class] strings or [null, null], got {v.GetRawText()}");
                string library = lib.GetString()!, klass = cls.GetString()!;
                if (klass == "MultiControlNetModel") AddMultiControlNet(folder, p.Name, components, path);
                else components[p.Name] = new PipelineComponent(p.Name, library, klass, Path.Combine(folder, p.Name));
            }
            return new ModelIndex(folder, className, version, components, absent, settings);
        }
    }

    /// <summary>diffusers saves net i of a MultiControlNetModel to controlnet_i (the first to controlnet) and loads them
    /// while the folders exist.</summary>
    static void AddMultiControlNet(string folder, string name, Dictionary<string, PipelineComponent> components, string path)
    {
        for (int i = 0; ; i++)
        {
            string sub = i == 0 ? name : $"{name}_{i}";
            string dir = Path.Combine(folder, sub);
            if (!Directory.Exists(dir))
            {
                if (i == 0) throw new DirectoryNotFoundException($"{path} names a MultiControlNetModel '{name}', but the folder {dir} is missing");
                return;
            }
            components[sub] = new PipelineComponent(sub, "diffusers", "ControlNetModel", dir);
        }
    }

    /// <summary>A component, with its folder and the files its class needs checked: config (and weights for a model;
    /// vocab.json and merges.txt for a tokenizer). Each missing piece is an error naming it.</summary>
    public PipelineComponent Require(string name)
    {
        if (!_components.TryGetValue(name, out var c))
            throw new InvalidDataException(Absent.Contains(name)
                ? $"{Path.Combine(Root, "model_index.json")}: component '{name}' is [null, null] in this pipeline"
                : $"{Path.Combine(Root, "model_index.json")}: no component '{name}' (components: {string.Join(", ", _components.Keys)})");
        if (!Directory.Exists(c.Folder)) throw new DirectoryNotFoundException($"pipeline component folder missing: {c.Folder} ({c.ClassName})");
        if (c.IsTokenizer)
        {
            foreach (var f in new[] { "vocab.json", "merges.txt" })
                if (!File.Exists(Path.Combine(c.Folder, f))) throw new FileNotFoundException($"tokenizer file missing: {Path.Combine(c.Folder, f)}");
            return c;
        }
        if (!File.Exists(c.ConfigPath)) throw new FileNotFoundException($"{c.Name} config missing: {c.ConfigPath}", c.ConfigPath);
        return c;
    }

    /// <summary>The weights of a model component as a tensor source: its safetensors file (the variant, e.g. "fp16",
    /// when given). A folder that holds only a pickle (.bin) is refused with a message saying to convert it.</summary>
    public ITensorSource Weights(string name, string? variant = null)
    {
        var c = Require(name);
        string path = c.WeightsPath(variant);
        if (!File.Exists(path))
        {
            string pickle = Path.ChangeExtension(path, ".bin");
            if (File.Exists(pickle)) PickleRefusal.ThrowIfPickle(pickle);
            throw new FileNotFoundException($"{c.Name} weights missing: {path}", path);
        }
        return SafeTensorsSource.Open(path);
    }
}

// A single-file Stable Diffusion 1.x / 2.x checkpoint (`.safetensors` with CompVis names) seen as diffusers
// components: every key is mapped once (CompVisNames.cs) given the components' layout, and each component ("unet",
// "vae", "text_encoder") is offered as an ITensorSource under its diffusers names, so a module loads from it exactly
// as from its folder. The VAE's mid-block attention weights, stored as (C, C, 1, 1) convolutions, read as (C, C)
// linears; SD 2.x's OpenCLIP in_proj (3C, …) reads as its q, k and v thirds. Known extras (LDM's DDPM buffers,
// model_ema.*, position_ids, OpenCLIP's projection) are ignored; keys outside every component are listed in
// Unrecognized; a key inside a component that fits no rule, or two keys mapping to one name, is an error.
// Pickle checkpoints (.ckpt, .pt, .bin) are refused with a message saying to convert them.
using DiffuSharp.IO;

namespace DiffuSharp.Pipelines;

/// <summary>Where one diffusers tensor comes from in the checkpoint.</summary>
/// <param name="Key">the CompVis key</param>
/// <param name="Shape">the shape as diffusers has it</param>
/// <param name="Part">−1: the whole tensor; 0, 1, 2: that third of its rows (OpenCLIP's q, k, v)</param>
public sealed record MappedTensor(string Key, int[] Shape, int Part = -1);

/// <summary>A CompVis single-file checkpoint mapped to diffusers component names.</summary>
public sealed class SingleFileCheckpoint
{
    readonly Dictionary<string, Dictionary<string, MappedTensor>> _components = new(StringComparer.Ordinal);

    /// <summary>The opened safetensors file.</summary>
    public SafeTensorsFile File { get; }
    /// <summary>The component layout (layers per block, up blocks with attention, level counts, text encoder layers)
    /// the keys were mapped with.</summary>
    public SingleFileLayout Layout { get; }
    /// <summary>Keys outside every component and not among the known extras (nothing is loaded from them).</summary>
    public IReadOnlyList<string> Unrecognized { get; }
    /// <summary>Known extras that were skipped (DDPM buffers, model_ema.*, position_ids, …).</summary>
    public IReadOnlyList<string> Ignored { get; }

    SingleFileCheckpoint(SafeTensorsFile file, SingleFileLayout layout, bool vaeOnly = false)
    {
        (File, Layout) = (file, layout);
        var unrecognized = new List<string>();
        var ignored = new List<string>();
        foreach (var key in file.Names)
        {
            var targets = vaeOnly ? CompVisNames.MapVae(key, layout, out bool known, file.SourceName)
                : CompVisNames.Map(key, layout, out known, file.SourceName);
            if (targets.Count == 0) { (known ? ignored : unrecognized).Add(key); continue; }
            var shape = StoredShape(key);
            foreach (var t in targets)
            {
                if (!_components.TryGetValue(t.Component, out var map)) _components[t.Component] = map = new(StringComparer.Ordinal);
                if (map.TryGetValue(t.Name, out var other))
                    throw new InvalidDataException($"{file.SourceName}: '{key}' and '{other.Key}' both map to {t.Component}/{t.Name}");
                map[t.Name] = new MappedTensor(key, DiffusersShape(t, shape, key), t.Part);
            }
        }
        (Unrecognized, Ignored) = (unrecognized, ignored);
    }

    /// <summary>Opens a single-file checkpoint and maps its names with the given layout.</summary>
    public static SingleFileCheckpoint Open(string path, SingleFileLayout layout)
    {
        PickleRefusal.ThrowIfPickle(path);
        return new SingleFileCheckpoint(SafeTensorsFile.Open(path), layout);
    }

    /// <summary>Opens a standalone LDM VAE file (keys encoder.*, decoder.*, quant_conv, post_quant_conv, as
    /// vae-ft-mse-840000-ema-pruned.safetensors): its one component is "vae".</summary>
    public static SingleFileCheckpoint OpenVae(string path, SingleFileLayout layout)
    {
        PickleRefusal.ThrowIfPickle(path);
        return new SingleFileCheckpoint(SafeTensorsFile.Open(path), layout, vaeOnly: true);
    }

    /// <summary>The component names found ("unet", "vae", "text_encoder").</summary>
    public IReadOnlyCollection<string> Components => _components.Keys;

    /// <summary>"component/diffusers name" → CompVis key, for every mapped tensor.</summary>
    public IReadOnlyDictionary<string, string> Mapping
        => _components.SelectMany(c => c.Value.Select(kv => (Key: c.Key + "/" + kv.Key, kv.Value.Key))).ToDictionary(e => e.Key, e => e.Item2);

    /// <summary>The tensors of one component under its diffusers names. A component the file lacks is an error naming it.</summary>
    public ITensorSource Component(string name)
        => _components.TryGetValue(name, out var map) ? new ComponentSource(this, name, map)
            : throw new InvalidDataException($"{File.SourceName}: no {name} weights in this checkpoint (expected keys under " +
                name switch { "unet" => CompVisNames.UnetPrefix, "vae" => CompVisNames.VaePrefix, _ => CompVisNames.ClipPrefix } + ")");

    int[] StoredShape(string key)
        => File.Info(key).Shape.Select(d => d <= int.MaxValue ? (int)d : throw new InvalidDataException($"{File.SourceName}: '{key}' has a dimension of {d}")).ToArray();

    int[] DiffusersShape(CompVisTarget t, int[] stored, string key)
    {
        if (t.Part >= 0)
        {
            if (stored.Length == 0 || stored[0] % 3 != 0)
                throw new InvalidDataException($"{File.SourceName}: '{key}' has shape ({string.Join(", ", stored)}), not three stacked q, k, v");
            return [stored[0] / 3, .. stored[1..]];
        }
        // the VAE mid-block attention: LDM stores its q, k, v, proj_out as 1×1 convolutions (C, C, 1, 1)
        bool midAttention = t.Component == "vae" && t.Name.Contains(".mid_block.attentions.0.to_", StringComparison.Ordinal) && t.Name.EndsWith(".weight", StringComparison.Ordinal);
        if (midAttention && stored is [var o, var i, 1, 1]) return [o, i];
        return stored;
    }

    sealed class ComponentSource(SingleFileCheckpoint owner, string component, Dictionary<string, MappedTensor> map) : ITensorSource
    {
        readonly string[] _names = [.. map.Keys];

        public string SourceName => $"{owner.File.SourceName} ({component})";
        public IReadOnlyList<string> Names => _names;
        public bool Contains(string name) => map.ContainsKey(name);
        public int[] Shape(string name) => (int[])Get(name).Shape.Clone();

        public float[] ReadFloat32(string name)
        {
            var m = Get(name);
            var all = owner.File.ReadFloat32(m.Key);
            if (m.Part < 0) return all;
            int third = all.Length / 3;
            return all.AsSpan(m.Part * third, third).ToArray();
        }

        MappedTensor Get(string name) => map.TryGetValue(name, out var m) ? m
            : throw new InvalidDataException($"{SourceName}: no tensor maps to '{name}'");
    }
}

// Writes an AutoencoderKL as a diffusers component folder: config.json with the keys of diffusers 0.27.2's
// AutoencoderKL.__init__ (what its save_pretrained writes) and diffusion_pytorch_model.safetensors with diffusers'
// parameter names (the module's own names are diffusers'), so that ComponentLoader.LoadAutoencoderKL and diffusers'
// AutoencoderKL.from_pretrained both load it.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;

namespace DiffuSharp.NN.Diffusers;

/// <summary>Writes an AutoencoderKL as a diffusers component folder (config.json with 0.27.2's keys and
/// diffusion_pytorch_model.safetensors under diffusers' names) that <see cref="ComponentLoader"/> and diffusers'
/// from_pretrained both load.</summary>
public static class VaeFolder
{
    /// <summary>The file names of a diffusers component folder: "config.json" and
    /// "diffusion_pytorch_model.safetensors".</summary>
    public const string ConfigFile = "config.json", WeightsFile = "diffusion_pytorch_model.safetensors";

    /// <summary>config.json's object for this config (scaling_factor as given: set it to 1 / std of the latents).</summary>
    public static JsonObject ConfigJson(AutoencoderKLConfig c)
    {
        int n = c.BlockOutChannels.Length;
        return new JsonObject
        {
            ["_class_name"] = "AutoencoderKL",
            ["_diffusers_version"] = "0.27.2",
            ["act_fn"] = c.ActFn switch { Activation.Silu => "silu", Activation.Gelu => "gelu", Activation.Relu => "relu", _ => throw new ArgumentOutOfRangeException(nameof(c)) },
            ["block_out_channels"] = new JsonArray(c.BlockOutChannels.Select(v => (JsonNode)v).ToArray()),
            ["down_block_types"] = new JsonArray(Enumerable.Repeat("DownEncoderBlock2D", n).Select(v => (JsonNode)v).ToArray()),
            ["force_upcast"] = c.ForceUpcast,
            ["in_channels"] = c.InChannels,
            ["latent_channels"] = c.LatentChannels,
            ["latents_mean"] = null,
            ["latents_std"] = null,
            ["layers_per_block"] = c.LayersPerBlock,
            ["norm_num_groups"] = c.NormNumGroups,
            ["out_channels"] = c.OutChannels,
            ["sample_size"] = c.SampleSize,
            ["scaling_factor"] = c.ScalingFactor,
            ["up_block_types"] = new JsonArray(Enumerable.Repeat("UpDecoderBlock2D", n).Select(v => (JsonNode)v).ToArray()),
        };
    }

    /// <summary>Writes config.json and the weights into <paramref name="folder"/> (created if needed), each file atomically.
    /// weights: (name, shape, values) in the model's parameter order, e.g. EMA values.</summary>
    public static void Save(string folder, AutoencoderKLConfig config, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFile), weights, meta);
        AtomicFile.WriteJson(Path.Combine(folder, ConfigFile), ConfigJson(config));
    }

    /// <summary>The model's current parameters as (name, shape, values).</summary>
    public static IEnumerable<(string Name, int[] Shape, float[] Data)> Weights(Module model)
        => model.NamedParameters().Select(p => (p.Name, p.Param.Shape.ToArray(), p.Param.ToArray()));

    internal static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

// Writes a UNet2DModel as a diffusers component folder: config.json with every key of diffusers 0.27.2's
// UNet2DModel.__init__ (what its save_pretrained writes, keys sorted) and diffusion_pytorch_model.safetensors under
// diffusers' parameter names, so that ComponentLoader.LoadUNet2D and diffusers' UNet2DModel.from_pretrained both
// read it. Only what UNet2DConfig can hold is written (positional time embedding, conv down/upsampling).
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;

namespace DiffuSharp.NN.Diffusers;

/// <summary>Writes a UNet2DModel as a diffusers component folder (config.json with 0.27.2's keys and
/// diffusion_pytorch_model.safetensors under diffusers' names) that <see cref="ComponentLoader.LoadUNet2D(string)"/> and
/// diffusers' from_pretrained both load.</summary>
public static class UNet2DFolder
{
    /// <summary>The file names of a diffusers component folder: "config.json" and
    /// "diffusion_pytorch_model.safetensors".</summary>
    public const string ConfigFile = "config.json", WeightsFile = "diffusion_pytorch_model.safetensors";

    /// <summary>config.json's object for this config.</summary>
    public static JsonObject ConfigJson(UNet2DConfig c)
    {
        static JsonArray Strings(IEnumerable<string> v) => new(v.Select(s => (JsonNode)s).ToArray());
        return new JsonObject
        {
            ["_class_name"] = "UNet2DModel",
            ["_diffusers_version"] = "0.27.2",
            ["act_fn"] = c.ActFn switch { Activation.Silu => "silu", Activation.Gelu => "gelu", Activation.Relu => "relu", _ => throw new ArgumentOutOfRangeException(nameof(c)) },
            ["add_attention"] = c.AddAttention,
            ["attention_head_dim"] = c.AttentionHeadDim,
            ["attn_norm_num_groups"] = c.AttnNormNumGroups,
            ["block_out_channels"] = new JsonArray(c.BlockOutChannels.Select(v => (JsonNode)v).ToArray()),
            ["center_input_sample"] = c.CenterInputSample,
            ["class_embed_type"] = null,
            ["down_block_types"] = Strings(c.DownBlockTypes.Select(t => t.ToString())),
            ["downsample_padding"] = c.DownsamplePadding,
            ["downsample_type"] = "conv",
            ["dropout"] = Decimal(c.Dropout),
            ["flip_sin_to_cos"] = c.FlipSinToCos,
            ["freq_shift"] = c.FreqShift,
            ["in_channels"] = c.InChannels,
            ["layers_per_block"] = c.LayersPerBlock,
            ["mid_block_scale_factor"] = c.MidBlockScaleFactor,
            ["norm_eps"] = Decimal(c.NormEps),
            ["norm_num_groups"] = c.NormNumGroups,
            ["num_class_embeds"] = c.NumClassEmbeds,
            ["num_train_timesteps"] = c.NumTrainTimesteps,
            ["out_channels"] = c.OutChannels,
            ["resnet_time_scale_shift"] = c.ResnetTimeScaleShift == TimeScaleShift.ScaleShift ? "scale_shift" : "default",
            ["sample_size"] = c.SampleSize,
            ["time_embedding_type"] = "positional",
            ["up_block_types"] = Strings(c.UpBlockTypes.Select(t => t.ToString())),
            ["upsample_type"] = "conv",
        };
    }

    /// <summary>A float32 setting as the double of its shortest decimal form (1e-5f as 1e-05, not 9.99999974737875e-06),
    /// as diffusers holds it (a Python float).</summary>
    static double Decimal(float v) => double.Parse(v.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>The config.json text (indent 2, a final newline, as diffusers writes it).</summary>
    public static string ConfigText(UNet2DConfig c) => ConfigJson(c).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>Writes config.json and the weights into <paramref name="folder"/> (created if needed), each file atomically.
    /// weights: (name, shape, values) in the model's parameter order, e.g. EMA values.</summary>
    public static void Save(string folder, UNet2DConfig config, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFile), weights, meta);
        string text = ConfigText(config);
        AtomicFile.Write(Path.Combine(folder, ConfigFile), s => s.Write(System.Text.Encoding.UTF8.GetBytes(text)));
    }
}

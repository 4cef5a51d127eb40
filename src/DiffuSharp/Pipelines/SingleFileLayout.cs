// What the CompVis names of a single-file Stable Diffusion checkpoint depend on: the UNet's layers_per_block and which
// of its up blocks have attentions (an up block's upsampler is output_blocks.n.1 without them, .2 with them), and the
// number of VAE levels (the decoder's up blocks are numbered in reverse). Read from the components' diffusers
// config.json files, or given directly by a pipeline that already holds the typed configs.
using System.Text.Json;

namespace DiffuSharp.Pipelines;

/// <summary>The layout facts the single-file name mapping needs.</summary>
/// <param name="UnetLayersPerBlock">UNet layers_per_block (2 in SD 1.x / 2.x)</param>
/// <param name="UnetUpBlockHasAttention">per UNet up block, in diffusers order: true for CrossAttnUpBlock2D / AttnUpBlock2D</param>
/// <param name="UnetDownBlockCount">number of UNet down blocks</param>
/// <param name="VaeLevels">number of VAE levels: len(block_out_channels) (4 in SD)</param>
/// <param name="TextLayers">text encoder num_hidden_layers: OpenCLIP layers beyond it are ignored (SD 2.x's
/// checkpoint holds 24, its diffusers text encoder uses 23)</param>
public sealed record SingleFileLayout(int UnetLayersPerBlock, IReadOnlyList<bool> UnetUpBlockHasAttention, int UnetDownBlockCount,
    int VaeLevels, int TextLayers)
{
    /// <summary>Stable Diffusion 1.x / 2.x: layers_per_block 2, up blocks UpBlock2D then three CrossAttnUpBlock2D, 4 VAE
    /// levels, 12 (1.x) or 23 (2.x) text layers.</summary>
    public static SingleFileLayout StableDiffusion(int textLayers = 12) => new(2, [false, true, true, true], 4, 4, textLayers);

    /// <summary>Reads the layout from the diffusers config.json of the UNet, the VAE and the text encoder.</summary>
    public static SingleFileLayout FromConfigs(string unetConfig, string vaeConfig, string textEncoderConfig)
    {
        using var unet = Read(unetConfig);
        using var vae = Read(vaeConfig);
        using var text = Read(textEncoderConfig);
        int layers = Int(unet.RootElement, "layers_per_block", unetConfig, 2);
        var up = Strings(unet.RootElement, "up_block_types", unetConfig, ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]);
        var down = Strings(unet.RootElement, "down_block_types", unetConfig, ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]);
        var levels = vae.RootElement.TryGetProperty("block_out_channels", out var b) && b.ValueKind == JsonValueKind.Array ? b.GetArrayLength()
            : throw new InvalidDataException($"{vaeConfig}: block_out_channels must be a list");
        return new SingleFileLayout(layers, up.Select(t => t.Contains("Attn", StringComparison.Ordinal)).ToArray(), down.Length, levels,
            Int(text.RootElement, "num_hidden_layers", textEncoderConfig, 12));
    }

    static JsonDocument Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config not found: {path}", path);
        try { return JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {e.Message}"); }
    }

    static int Int(JsonElement root, string key, string source, int fallback)
    {
        if (!root.TryGetProperty(key, out var v)) return fallback;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i > 0 ? i
            : throw new InvalidDataException($"{source}: {key} must be a positive integer, got {v.GetRawText()}");
    }

    static string[] Strings(JsonElement root, string key, string source, string[] fallback)
    {
        if (!root.TryGetProperty(key, out var v)) return fallback;
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            throw new InvalidDataException($"{source}: {key} must be a list of block type names, got {v.GetRawText()}");
        return v.EnumerateArray().Select(e => e.GetString()!).ToArray();
    }
}

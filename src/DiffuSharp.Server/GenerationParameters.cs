// sd-webui's generation-parameters text (the PNG tEXt chunk "parameters"), the same layout `diffusharp txt2img`
// writes: the prompt, "Negative prompt: …" when there is one, then "Steps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1,
// Size: 64x64, Model: tiny_sd". The page parses it back to reuse a gallery image's settings.
using System.Globalization;

namespace DiffuSharp.Server;

public static class GenerationParameters
{
    public static string Format(string prompt, string? negative, int steps, string sampler, double cfgScale, long seed,
        int width, int height, string model, string? extra = null)
    {
        var inv = CultureInfo.InvariantCulture;
        string settings = $"Steps: {steps}, Sampler: {sampler}, CFG scale: {cfgScale.ToString(inv)}, Seed: {seed.ToString(inv)}, Size: {width}x{height}, Model: {model}";
        if (!string.IsNullOrEmpty(extra)) settings += ", " + extra;
        // one line per part: newlines inside the prompt would end it early for readers of the format
        string p = prompt.ReplaceLineEndings(" ");
        return string.IsNullOrEmpty(negative) ? $"{p}\n{settings}" : $"{p}\nNegative prompt: {negative.ReplaceLineEndings(" ")}\n{settings}";
    }
}

// One generation job as the engine runs it, whichever endpoint asked for it (the page's /api/jobs, sd-webui's
// /sdapi/v1/txt2img and img2img), and its checks against the server's limits. Every problem is an
// ArgumentException whose message names the field, which the endpoints turn into a 400.
using System.Globalization;
using DiffuSharp.Imaging;

namespace DiffuSharp.Server;

public enum GenerationMode { Txt2Img, Img2Img, Inpaint }

/// <param name="Prompt">pipelines: the prompt; class-conditional pixel models: the class, by name or label ("" = one of each in turn)</param>
/// <param name="Seed">first image's seed; image i of the job uses Seed + i, as sd-webui does</param>
/// <param name="Seed2">interpolation: x_T = slerp(noise(Seed + i), noise(Seed2 + i), Mix)</param>
/// <param name="Trajectory">pixel models: also return a strip of x_t (top row) and predicted x0 (bottom row) over the steps</param>
/// <param name="Control">a pipeline's job (any mode): its ControlNets by name, each with a control image and scale (ControlUnits.cs)</param>
public sealed record GenerationSpec(
    string Model,
    GenerationMode Mode = GenerationMode.Txt2Img,
    string Prompt = "",
    string NegativePrompt = "",
    string? Sampler = null,
    int Steps = 20,
    double CfgScale = 7.0,
    long Seed = -1,
    int Width = 0,
    int Height = 0,
    int BatchSize = 1,
    int NIter = 1,
    double DenoisingStrength = 0.75,
    Image8? InitImage = null,
    Image8? Mask = null,
    IReadOnlyList<ControlUnit>? Control = null,
    long? Seed2 = null,
    double Mix = 0,
    bool Trajectory = false)
{
    public int ImageCount => BatchSize * NIter;

    /// <summary>Checks the spec against <paramref name="limits"/> and the model; returns it with the model's defaults
    /// filled in (size, sampler, a drawn seed for -1) and the prompt resolved to a class for pixel models.</summary>
    public GenerationSpec Resolve(ModelEntry model, ServerLimits limits, Random random)
    {
        Check(Steps >= 1 && Steps <= limits.MaxSteps, $"steps must be between 1 and {limits.MaxSteps}, got {Steps}");
        Check(BatchSize >= 1 && BatchSize <= limits.MaxBatchSize, $"batch_size must be between 1 and {limits.MaxBatchSize}, got {BatchSize}");
        Check(NIter >= 1 && NIter <= limits.MaxIterations, $"n_iter must be between 1 and {limits.MaxIterations}, got {NIter}");
        Check(Prompt.Length <= limits.MaxPromptChars, $"prompt is {Prompt.Length} characters, the limit is {limits.MaxPromptChars}");
        Check(NegativePrompt.Length <= limits.MaxPromptChars, $"negative_prompt is {NegativePrompt.Length} characters, the limit is {limits.MaxPromptChars}");
        Check(double.IsFinite(CfgScale) && CfgScale >= 0 && CfgScale <= 30, $"cfg_scale must be between 0 and 30, got {CfgScale}");
        Check(double.IsFinite(DenoisingStrength) && DenoisingStrength >= 0 && DenoisingStrength <= 1, $"denoising_strength must be between 0 and 1, got {DenoisingStrength}");
        Check(double.IsFinite(Mix) && Mix >= 0 && Mix <= 1, $"mix must be between 0 and 1, got {Mix}");
        Check(Seed >= -1, $"seed must be -1 (random) or a non-negative integer, got {Seed}");
        Check(Seed2 is null or >= 0, $"seed2 must be a non-negative integer, got {Seed2}");
        Check(Steps <= model.TrainSteps, $"steps {Steps} is more than {model.Name}'s {model.TrainSteps} trained timesteps");
        string sampler = Sampler is null or "" ? model.DefaultSampler : Sampler;
        try { Schedulers.SchedulerFactory.ConfigFor(sampler, Schedulers.SchedulerConfig.DefaultsFor("DDIMScheduler")); }
        catch (ArgumentException e) { throw new ArgumentException($"sampler_name: {e.Message}"); }
        long seed = Seed == -1 ? random.NextInt64(0, uint.MaxValue) : Seed;
        var spec = this with { Sampler = sampler, Seed = seed };

        if (model.Kind == ModelKind.Pixel)
        {
            Check(Mode == GenerationMode.Txt2Img, $"{Mode.ToString().ToLowerInvariant()} needs a text-to-image pipeline model; {model.Name} is a pixel model (txt2img only)");
            Check(NegativePrompt.Length == 0, $"negative_prompt applies to text-to-image pipelines; {model.Name} is a class model");
            Check(Control is not { Count: > 0 }, $"a control image needs a pipeline with a ControlNet; {model.Name} is a pixel model");
            ClassLabel(model, Prompt);                                     // a bad class is refused here, before the queue
            // a pixel model makes images of its own size: width/height are ignored (sd-webui clients always send them)
            return spec with { Width = model.Width, Height = model.Height };
        }
        Check(Seed2 is null && !Trajectory, "seed2/mix and trajectory are offered for pixel models only");
        bool control = Control is { Count: > 0 };
        Check(!control || model.ControlNets > 0, $"a control image needs a pipeline with a ControlNet; {model.Name} has none");
        int w = Width, h = Height;
        if (Mode != GenerationMode.Txt2Img)
        {
            Check(InitImage is not null, $"{Mode.ToString().ToLowerInvariant()} needs an init image (init_images)");
            (w, h) = (InitImage!.Width, InitImage.Height);
            Check(Mode != GenerationMode.Inpaint || Mask is not null, "inpaint needs a mask");
            if (Mask is not null) Check(Mask.Width == w && Mask.Height == h, $"the mask is {Mask.Width}x{Mask.Height}, the init image {w}x{h}; they must match");
        }
        if (w == 0) w = model.Width;
        if (h == 0) h = model.Height;
        Check(w >= 8 && h >= 8 && w <= limits.MaxSide && h <= limits.MaxSide && w % 8 == 0 && h % 8 == 0,
            $"width and height must be multiples of 8 between 8 and {limits.MaxSide}, got {w}x{h}");
        return spec with { Width = w, Height = h, Control = control ? ControlUnits.Resolve(Control!, model, w, h) : null };
    }

    /// <summary>The label a pixel model's prompt asks for: a class name (any case), a label number, or null ("" : balanced).</summary>
    public static int? ClassLabel(ModelEntry model, string prompt)
    {
        string p = prompt.Trim();
        if (model.ClassNames.Count == 0)
        {
            Check(p.Length == 0, $"{model.Name} is unconditional: leave the prompt empty");
            return null;
        }
        if (p.Length == 0) return null;
        for (int i = 0; i < model.ClassNames.Count; i++)
            if (string.Equals(model.ClassNames[i], p, StringComparison.OrdinalIgnoreCase)) return i;
        if (int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int k) && k < model.ClassNames.Count) return k;
        throw new ArgumentException($"prompt: {model.Name} is a class model; the prompt must be a class name ({string.Join(", ", model.ClassNames)}) or a label 0..{model.ClassNames.Count - 1}, got '{Truncate(p)}'");
    }

    static string Truncate(string s) => s.Length <= 60 ? s : s[..60] + "…";

    static void Check(bool ok, string message)
    {
        if (!ok) throw new ArgumentException(message);
    }
}

// diffusharp txt2img: Stable Diffusion text-to-image from a diffusers pipeline folder (or a single-file .safetensors
// checkpoint read with --config DIR's configs) through Pipelines/StableDiffusionPipeline. Writes a PNG (a grid for
// --n > 1) whose tEXt chunk "parameters" holds sd-webui's generation-parameters text, so other tools read them back.
// --latents FILE gives x_T (.npy / .safetensors, float32 N×4×h×w), which makes the run a pure function of its inputs;
// --save-npy writes the decoded images as float32 N×3×H×W in [-1, 1].
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Cli;

public static class Txt2ImgCommand
{
    const string Summary = "Stable Diffusion text-to-image, step for step as diffusers' StableDiffusionPipeline.";

    static readonly OptionSpec[] Options =
    [
        new("model", "diffusers pipeline folder, or a single-file .safetensors checkpoint (with --config)", Value: "DIR|FILE"),
        new("config", "pipeline folder whose configs, tokenizer and scheduler a single-file checkpoint uses", Value: "DIR"),
        new("prompt", "the prompt", Value: "TEXT"),
        new("negative", "negative prompt", "\"\"", Value: "TEXT"),
        new("guidance", "classifier-free guidance scale W (≤ 1: off)", "7.5", Value: "W"),
        new("steps", "number of denoising steps", "50", Value: "S"),
        new("sampler", $"scheduler by name ({SchedulerFactory.CliNames}, an sd-webui name or a diffusers class); default: the folder's", Value: "NAME"),
        new("karras", "Karras sigmas (σ-based and DPM-Solver samplers)", IsFlag: true),
        new("seed", "seed of the initial latents and any sampler noise", "0", Value: "K"),
        new("width", "image width, a multiple of 8 (default: the UNet's sample_size × 8)", Value: "W"),
        new("height", "image height, a multiple of 8 (default: the UNet's sample_size × 8)", Value: "H"),
        new("n", "images per prompt", "1", Value: "N"),
        new("latents", "initial latents x_T from FILE (.npy or .safetensors, float32 N×4×h×w)", Value: "FILE"),
        new("save-npy", "also write the images as .npy (float32 N×3×H×W in [-1, 1])", Value: "FILE"),
        new("out", "output image: .png (with the generation parameters) or .jpg", Value: "FILE"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var o = OptionParser.Parse("txt2img", args, Options);
        if (o.Flag("help"))
        {
            stdout.WriteLine(OptionParser.Help("txt2img --model DIR --prompt P --out FILE.png", Summary, Options));
            return 0;
        }
        string model = o.Required("model"), prompt = o.Required("prompt"), outPath = o.Required("out");
        string? negative = o.String("negative");
        double guidance = o.Has("guidance") ? o.Double("guidance") : 7.5;
        int steps = o.Has("steps") ? o.Int("steps", min: 1) : 50;
        int n = o.Has("n") ? o.Int("n", min: 1, max: 64) : 1;
        long seed = o.Has("seed") ? o.Long("seed") : 0;
        if (!ImageFile.HasWritableExtension(outPath)) throw new CliException($"txt2img: --out must be a .png, .jpg or .jpeg file, got '{outPath}'");
        int? width = o.Has("width") ? o.Int("width", min: 8) : null, height = o.Has("height") ? o.Int("height", min: 8) : null;
        if ((width ?? 8) % 8 != 0 || (height ?? 8) % 8 != 0)
            throw new CliException($"txt2img: --width and --height must be multiples of 8, got {width?.ToString() ?? "default"}x{height?.ToString() ?? "default"}");
        string? outDir = Path.GetDirectoryName(Path.GetFullPath(outPath));
        if (!Directory.Exists(outDir)) throw new CliException($"txt2img: output folder does not exist: {outDir}");

        var source = OpenSource(model, o.String("config"));
        var pipe = StableDiffusionPipeline.Load(source, o.String("sampler"), o.Flag("karras"));
        int w = width ?? pipe.UNet.Config.SampleSize * pipe.VaeScaleFactor, h = height ?? pipe.UNet.Config.SampleSize * pipe.VaeScaleFactor;
        Tensor? latents = null;
        if (o.String("latents") is { } latentsPath)
        {
            var (shape, data) = ReadLatents(latentsPath);
            int[] want = [n, pipe.UNet.Config.InChannels, h / pipe.VaeScaleFactor, w / pipe.VaeScaleFactor];
            if (!shape.SequenceEqual(want))
                throw new CliException($"txt2img: --latents {latentsPath} has shape ({string.Join(", ", shape)}), {n} image(s) of {w}x{h} need ({string.Join(", ", want)})");
            if (data.Any(v => !float.IsFinite(v))) throw new CliException($"txt2img: --latents {latentsPath} holds non-finite values");
            latents = Tensor.FromArray(data, shape);
        }

        var request = new Txt2ImgRequest(prompt, negative, guidance, steps, w, h, n, latents);
        var clock = Stopwatch.StartNew();
        pipe.Scheduler.SetTimesteps(steps);                 // the model calls of the run: PNDM makes n + 1, Heun 2n − 1
        int total = pipe.Scheduler.Timesteps.Count;
        var result = pipe.Txt2Img(request, new Rng(unchecked((ulong)seed)),
            (i, t, _) => stderr.Write($"\rtxt2img: step {i + 1}/{total} (t = {t.ToString("0.###", CultureInfo.InvariantCulture)})"));
        stderr.WriteLine();
        foreach (var warning in result.Warnings) stderr.WriteLine($"warning: {warning}");

        var images = result.Image.Contiguous().ToArray();                           // (N, 3, H, W) in [0, 1]
        var signed = Array.ConvertAll(images, v => v * 2f - 1f);                    // [-1, 1], ImageGrid's and --save-npy's range
        string parameters = Parameters(prompt, negative, steps, SamplerDisplayName(pipe.Scheduler.Config), guidance, seed, w, h, ModelName(model));
        ImageFile.Write(outPath, ImageGrid.Make(signed, n, 3, h, w, padding: n == 1 ? 0 : 2), text: [("parameters", parameters)]);   // PNG keeps the parameters
        if (o.String("save-npy") is { } npy) Npy.WriteFloat32(npy, [n, 3, h, w], signed);
        stdout.WriteLine($"wrote {outPath}: {n} image(s) {w}x{h}, {steps} steps of {SamplerDisplayName(pipe.Scheduler.Config)}, {clock.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>sd-webui's generation parameters: the prompt, "Negative prompt: …" when there is one, then the settings line.</summary>
    public static string Parameters(string prompt, string? negative, int steps, string sampler, double guidance, long seed, int width, int height, string model)
    {
        var inv = CultureInfo.InvariantCulture;
        string settings = $"Steps: {steps}, Sampler: {sampler}, CFG scale: {guidance.ToString(inv)}, Seed: {seed.ToString(inv)}, Size: {width}x{height}, Model: {model}";
        return string.IsNullOrEmpty(negative) ? $"{prompt}\n{settings}" : $"{prompt}\nNegative prompt: {negative}\n{settings}";
    }

    /// <summary>The sd-webui name of a scheduler config ("DPM++ 2M Karras", "PLMS"); the class name when none matches.</summary>
    static string SamplerDisplayName(SchedulerConfig c)
    {
        var match = SchedulerFactory.Samplers.Where(s => s.ClassName == c.ClassName).ToList();
        var best = match.FirstOrDefault(s => s.Adjust(c) == c) ?? match.FirstOrDefault();
        string name = best?.DisplayName ?? c.ClassName;
        return c.UseKarrasSigmas ? name + " Karras" : name;
    }

    static string ModelName(string model)
        => Directory.Exists(model) ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model))) : Path.GetFileNameWithoutExtension(model);

    static IPipelineSource OpenSource(string model, string? config)
    {
        PickleRefusal.ThrowIfPickle(model);
        if (Directory.Exists(model))
        {
            if (config is not null) throw new CliException("txt2img: --config is for a single-file checkpoint; --model is already a folder");
            return ModelIndex.Load(model);
        }
        if (!File.Exists(model)) throw new CliException($"txt2img: --model not found: {model}");
        if (!model.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new CliException($"txt2img: --model must be a pipeline folder or a .safetensors checkpoint, got '{model}'");
        if (config is null) throw new CliException($"txt2img: {model} is a single-file checkpoint: pass --config DIR, a pipeline folder with its configs, tokenizer and scheduler");
        return SingleFilePipeline.Open(model, config);
    }

    static (int[] Shape, float[] Data) ReadLatents(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"latents file not found: {path}", path);
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return Npy.ReadFloat32(path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var f = SafeTensorsFile.Open(path);
            string name = f.Names.Count == 1 ? f.Names[0]
                : f.Contains("latents") ? "latents" : throw new InvalidDataException($"{path}: holds {f.Names.Count} tensors; expected one, or one named \"latents\"");
            return (Array.ConvertAll(f.Info(name).Shape, d => checked((int)d)), f.ReadFloat32(name));
        }
        throw new CliException($"txt2img: --latents must be a .npy or .safetensors file, got '{path}'");
    }
}

// What interpolate, invert and eval share: loading images for a model (the project's PNG decoder, converted to the
// model's channels and size), the model as a DiffusionModel delegate with class labels, respaced diffusions, and
// options that take two values (--images A B, --seeds S1 S2).
using System.Globalization;
using DiffuSharp.Diffusion;
using DiffuSharp.Imaging;
using DiffuSharp.Models;
using DiffuSharp.NN;

namespace DiffuSharp.Cli;

internal static class CliModel
{
    /// <summary>
    /// Reads an image (PNG, JPEG, BMP, GIF, WebP or TIFF; ImageFile's pixel limit) as (C, S, S) in [-1, 1] for a model with C = in_channels and S = image_size: gray ↔ RGB converted,
    /// alpha composited over white, other sizes scaled (short side to S) and centre-cropped. resized tells whether
    /// the size changed.
    /// </summary>
    public static (float[] Pixels, bool Resized) ReadImage(string command, string path, ModelConfig config)
    {
        if (config.InChannels is not (1 or 3))
            throw new CliException($"{command}: the model has in_channels {config.InChannels}; images can feed only gray (1) or RGB (3) models");
        if (Directory.Exists(path)) throw new CliException($"{command}: {path} is a folder, not an image");
        if (!File.Exists(path)) throw new FileNotFoundException($"image not found: {path}", path);
        var image = ImageFile.Read(path);
        int c = config.InChannels, s = config.ImageSize;
        if (image.Width == s && image.Height == s) return (ImageGrid.ToFloat(image, c), false);
        var dst = new float[c * s * s];
        Resize.ShortSideCenterCrop(image.WithChannels(c), s, dst);
        return (dst, true);
    }

    /// <summary>The UNet as the diffusion calls it, with <paramref name="label"/> for every sample of a class-conditional model.</summary>
    public static DiffusionModel WithLabel(UNetModel model, int? label)
        => label is int k ? (x, t) => model.Forward(x, t, Enumerable.Repeat(k, x.Dim(0)).ToArray()) : (x, t) => model.Forward(x, t);

    /// <summary>--class for the model in <paramref name="modelDir"/>: required for a class-conditional model, refused for another.</summary>
    public static int? Label(string command, ParsedOptions o, ModelConfig config, string modelDir)
    {
        string? spec = o.String("class");
        if (config.ClassCount is not int k)
        {
            if (spec is not null) throw new CliException($"{command}: --class given, but the model is not class-conditional (class_cond false)");
            return null;
        }
        if (spec is null) throw new CliException($"{command}: the model is class-conditional: pass --class 0..{k - 1} (or a class name)");
        return ClassLabels.Parse(command, spec, k, ClassLabels.Names(modelDir, config));
    }

    /// <summary>Refuses a --sampler name the scheduler factory does not know (before any model is loaded).</summary>
    public static void CheckSamplerName(string command, string name)
    {
        try { Schedulers.SchedulerFactory.ConfigFor(name, Schedulers.SchedulerConfig.DefaultsFor("DDIMScheduler")); }
        catch (ArgumentException e) { throw new CliException($"{command}: --sampler: {e.Message}"); }
    }

    /// <summary>--guidance W: only for a class-conditional model with a null label.</summary>
    public static double? Guidance(string command, ParsedOptions o, ModelConfig config, string modelDir)
    {
        if (!o.Has("guidance")) return null;
        double w = o.Double("guidance", min: 0);
        if (config.ClassCount is null)
            throw new CliException($"{command}: --guidance needs a class-conditional model; {modelDir} is unconditional (class_cond false)");
        if (config.NullLabel is null)
            throw new CliException($"{command}: --guidance needs a model trained with a null label (train --class-dropout-prob); {modelDir} has none (model.json: null_class is not true)");
        return w;
    }

    /// <summary>The model's diffusion respaced to <paramref name="steps"/> evenly spaced steps (null: every trained step).</summary>
    public static SpacedDiffusion Diffusion(string command, ModelConfig config, int? steps)
    {
        if (steps is int n && n > config.DiffusionSteps)
            throw new CliException($"{command}: --steps {n} is more than the model's diffusion_steps {config.DiffusionSteps}");
        string spacing = steps is int s ? s.ToString(CultureInfo.InvariantCulture) : "";
        return DiffusionFactory.Create(config.ToDiffusionConfig() with { TimestepRespacing = spacing });
    }

    /// <summary>The index of a respaced diffusion whose trained timestep is the largest one ≤ t.</summary>
    public static int IndexAtOrBelow(SpacedDiffusion d, int t)
    {
        int i = 0;
        while (i + 1 < d.TimestepMap.Count && d.TimestepMap[i + 1] <= t) i++;
        return i;
    }

    public static ulong Seed(string command, string name, string value)
        => ulong.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s)
            ? s : throw new CliException($"{command}: --{name} expects a non-negative integer, got '{value}'");

    /// <summary>Removes "--name A B" from args and returns (A, B), or null when the option is absent.</summary>
    public static (string A, string B)? TakePair(string command, ref string[] args, string name)
    {
        int at = Array.IndexOf(args, "--" + name);
        if (at < 0)
        {
            if (args.Any(a => a.StartsWith("--" + name + "=", StringComparison.Ordinal)))
                throw new CliException($"{command}: --{name} takes two values: --{name} A B");
            return null;
        }
        if (at + 2 >= args.Length || args[at + 1].StartsWith("--", StringComparison.Ordinal) || args[at + 2].StartsWith("--", StringComparison.Ordinal))
            throw new CliException($"{command}: --{name} needs two values: --{name} A B");
        var pair = (args[at + 1], args[at + 2]);
        args = [.. args[..at], .. args[(at + 3)..]];
        if (Array.IndexOf(args, "--" + name) >= 0) throw new CliException($"{command}: --{name} given twice");
        return pair;
    }

    /// <summary>A folder for an output file must exist (the writers create files, not folders).</summary>
    public static void CheckOutput(string command, string path)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir)) throw new CliException($"{command}: cannot write {path}: folder {dir} does not exist");
    }

    /// <summary><see cref="CheckOutput"/> for --out, which writes an image: PNG or JPEG by its extension.</summary>
    public static void CheckImageOutput(string command, string path)
    {
        CheckOutput(command, path);
        if (!ImageFile.HasWritableExtension(path))
            throw new CliException($"{command}: --out {path}: writes an image, so the name must end in .png, .jpg or .jpeg");
    }
}

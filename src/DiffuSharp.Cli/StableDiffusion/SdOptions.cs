// The options txt2img, img2img and inpaint share, parsed and checked in one place: everything that can be checked
// without the models (output paths, sizes, input images and their sizes, option counts) is checked before a model is
// loaded, so bad input costs nothing and leaves nothing behind. Images are PNGs read as diffusers' VaeImageProcessor
// reads them: an image as 2·u8/255 − 1 (RGB), a mask as u8/255 of its luma (Pillow's "L"), a control image as u8/255.
// Sizes are never changed: an image whose sides are not multiples of 8, a mask or control image of another size than
// the run's, is refused with a line saying so (diffusers would resize them; a silent resize hides mistakes).
using System.Globalization;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Cli.StableDiffusion;

/// <summary>Which pipeline a command runs.</summary>
public enum SdMode { Txt2Img, Img2Img, Inpaint }

/// <summary>One ControlNet of the command line: --controlnet (null: the pipeline folder's own net), --control-image,
/// --control-scale and the share of the steps it acts on, --control-start to --control-end.</summary>
public sealed record ControlSpec(string? Folder, string ImagePath, double Scale, double Start = 0, double End = 1);

/// <summary>A parsed and checked Stable Diffusion command line.</summary>
public sealed record SdOptions(SdMode Mode, string Command, string Model, string? Config, string Prompt, string? Negative, double Guidance,
    int Steps, string? Sampler, bool Karras, long Seed, int? Width, int? Height, int N, string? Latents, string? SaveNpy, string Out,
    string? ImagePath, string? MaskPath, double Strength, IReadOnlyList<ControlSpec> Control, bool VaeTiling,
    string? Preview, int PreviewEvery, string PreviewMode)
{
    public static OptionSpec[] Specs(SdMode mode)
    {
        bool image = mode != SdMode.Txt2Img;
        var specs = new List<OptionSpec>
        {
            new("model", "diffusers pipeline folder, or a single-file .safetensors checkpoint (with --config); default: the shipped models/fashion-mnist-ldm", Value: "DIR|FILE"),
            new("config", "pipeline folder whose configs, tokenizer and scheduler a single-file checkpoint uses", Value: "DIR"),
            new("prompt", "the prompt", Value: "TEXT"),
            new("negative", "negative prompt (default: none, encoded as \"\" as diffusers does)", Value: "TEXT"),
            new("guidance", "classifier-free guidance scale W (≤ 1: off)", "7.5", Value: "W"),
            new("steps", "number of denoising steps" + (image ? " (the run makes int(steps × strength))" : ""), "50", Value: "S"),
            new("sampler", $"scheduler by name ({SchedulerFactory.CliNames}, an sd-webui name or a diffusers class); default: the folder's", Value: "NAME"),
            new("karras", "Karras sigmas (σ-based and DPM-Solver samplers)", IsFlag: true),
            new("seed", "seed of the initial latents and any sampler noise", "0", Value: "K"),
            new("width", image ? "image width: the --image's (given: must equal it)" : "image width, a multiple of 8 (default: the UNet's sample_size × 8)", Value: "W"),
            new("height", image ? "image height: the --image's (given: must equal it)" : "image height, a multiple of 8 (default: the UNet's sample_size × 8)", Value: "H"),
            new("n", "images per prompt", "1", Value: "N"),
        };
        if (image) specs.Add(new("image", mode == SdMode.Inpaint ? "the image to paint into (PNG, sides multiples of 8)" : "the init image (PNG, sides multiples of 8)", Value: "FILE"));
        if (mode == SdMode.Inpaint) specs.Add(new("mask", "the mask (PNG of the image's size; white = repaint, black = keep; binarized at 50%)", Value: "FILE"));
        if (image) specs.Add(new("strength", mode == SdMode.Inpaint ? "how much to change the masked part (1: from pure noise)" : "how much to change the image (0: not at all, 1: from pure noise)",
            mode == SdMode.Inpaint ? "1" : "0.8", Value: "S"));
        specs.AddRange(
        [
            new("latents", mode == SdMode.Txt2Img ? "initial latents x_T from FILE (.npy or .safetensors, float32 N×4×h×w)"
                : "the noise from FILE (.npy or .safetensors, float32 N×4×h×w) instead of the seed's", Value: "FILE"),
            new("controlnet", "a ControlNet folder, or the name of one of the pipeline folder's (NAME: <model>/controlnet-NAME, or model_index.json's), repeatable (none: the pipeline folder's own, when --control-image is given)", Value: "DIR|NAME"),
            new("control-image", "the control image of each ControlNet, repeatable (PNG of the output's size; used as is, no preprocessor)", Value: "FILE"),
            new("control-scale", "conditioning scale, repeatable: one for all ControlNets, or one each (default 1)", Value: "S"),
            new("control-start", "share of the steps before a ControlNet starts, repeatable as --control-scale (default 0)", Value: "F"),
            new("control-end", "share of the steps after which a ControlNet stops, repeatable as --control-scale (default 1)", Value: "F"),
            new("vae-tiling", "decode the latents in overlapping tiles (bounded memory for large images)", IsFlag: true),
            new("preview", "write a preview of the predicted image to FILE (.png) while sampling", Value: "FILE"),
            new("preview-every", "steps between previews (the last step always)", "1", Value: "N"),
            new("preview-mode", "cheap (a fixed latent→RGB map, free) or vae (a VAE decode, costly)", "cheap", Value: "MODE"),
            new("save-npy", "also write the images as .npy (float32 N×C×H×W in [-1, 1])", Value: "FILE"),
            new("out", "output PNG", Value: "FILE"),
            new("help", "show this help", IsFlag: true),
        ]);
        return [.. specs];
    }

    /// <summary>The options that may be given several times, once per ControlNet.</summary>
    static readonly string[] Repeatable = ["controlnet", "control-image", "control-scale", "control-start", "control-end"];

    /// <summary>Takes every --controlnet, --control-image, --control-scale, --control-start and --control-end (as
    /// "--name value" or "--name=value") out of <paramref name="args"/>, in order, leaving the rest for the parser, which
    /// takes each option once. A value of another option is never taken for an option name.</summary>
    public static (string[] Others, Dictionary<string, List<string>> Repeated) TakeRepeated(string command, string[] args, IReadOnlyList<OptionSpec> specs)
    {
        var rest = new List<string>();
        var repeated = Repeatable.ToDictionary(n => n, _ => new List<string>());
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string name = a.StartsWith("--", StringComparison.Ordinal) ? a[2..].Split('=', 2)[0] : "";
            bool inline = a.Contains('=') && name.Length > 0;
            if (repeated.TryGetValue(name, out var list))
            {
                if (inline) list.Add(a[(a.IndexOf('=') + 1)..]);
                else if (i + 1 < args.Length) list.Add(args[++i]);
                else throw new CliException($"{command}: --{name} needs a value");
                continue;
            }
            rest.Add(a);
            if (!inline && i + 1 < args.Length && specs.FirstOrDefault(s => s.Name == name) is { IsFlag: false }) rest.Add(args[++i]);   // its value
        }
        return ([.. rest], repeated);
    }

    /// <summary>Reads and checks <paramref name="o"/> and the repeated ControlNet options; throws CliException naming
    /// the option at the first problem.</summary>
    public static SdOptions Parse(SdMode mode, string command, ParsedOptions o, IReadOnlyDictionary<string, List<string>> repeated)
    {
        string model = ShippedModels.FlagOrShipped(command, o, "model", ShippedModels.TextToImage, "model_index.json", "DIR|FILE"),
            prompt = o.Required("prompt"), outPath = o.Required("out");
        int? width = o.Has("width") ? o.Int("width", min: 8) : null, height = o.Has("height") ? o.Int("height", min: 8) : null;
        if ((width ?? 8) % 8 != 0 || (height ?? 8) % 8 != 0)
            throw new CliException($"{command}: --width and --height must be multiples of 8, got {width?.ToString() ?? "default"}x{height?.ToString() ?? "default"}");
        if (!ImageFile.HasWritableExtension(outPath)) throw new CliException($"{command}: --out must be a .png, .jpg or .jpeg file, got '{outPath}'");
        CheckOutput(command, "out", outPath, Path.GetExtension(outPath));
        if (o.String("save-npy") is { } npy) CheckOutput(command, "save-npy", npy, ".npy");
        if (o.String("preview") is { } preview) CheckOutput(command, "preview", preview, ".png");
        string previewMode = o.String("preview-mode") ?? "cheap";
        if (previewMode is not ("cheap" or "vae")) throw new CliException($"{command}: --preview-mode must be cheap or vae, got '{previewMode}'");
        if (o.String("latents") is { } latents && !File.Exists(latents)) throw new CliException($"{command}: --latents file not found: {latents}");

        string? imagePath = mode == SdMode.Txt2Img ? null : o.Required("image");
        string? maskPath = mode == SdMode.Inpaint ? o.Required("mask") : null;
        double strength = mode == SdMode.Txt2Img ? 1.0 : o.Double("strength", min: 0, max: 1);
        if (mode == SdMode.Inpaint && strength == 0) throw new CliException($"{command}: --strength must be above 0 for inpainting, got 0");

        var nets = repeated["controlnet"];
        var images = repeated["control-image"];
        if (nets.Count > 0 && images.Count != nets.Count)
            throw new CliException($"{command}: {nets.Count} --controlnet need {nets.Count} --control-image (one each, in the same order), got {images.Count}");
        double[] PerNet(string flag, double fallback)
        {
            var values = repeated[flag].Select(s => ParseNumber(command, flag, s)).ToList();
            if (values.Count > 0 && images.Count == 0) throw new CliException($"{command}: --{flag} without --control-image");
            if (values.Count > 1 && values.Count != images.Count)
                throw new CliException($"{command}: give one --{flag} for all ControlNets or one each ({images.Count}), got {values.Count}");
            return [.. images.Select((_, k) => values.Count == 0 ? fallback : values.Count == 1 ? values[0] : values[k])];
        }
        double[] scales = PerNet("control-scale", 1.0), starts = PerNet("control-start", 0.0), ends = PerNet("control-end", 1.0);
        for (int k = 0; k < images.Count; k++)
            if (!(0 <= starts[k] && starts[k] < ends[k] && ends[k] <= 1))
                throw new CliException($"{command}: ControlNet {k}: --control-start {starts[k].ToString(CultureInfo.InvariantCulture)} and --control-end {ends[k].ToString(CultureInfo.InvariantCulture)} must satisfy 0 ≤ start < end ≤ 1");
        var folders = nets.Select(n => ControlNetFolder(command, n, model, o.String("config"))).ToList();
        var control = images.Select((img, k) => new ControlSpec(nets.Count > 0 ? folders[k] : null, img, scales[k], starts[k], ends[k])).ToList();

        return new SdOptions(mode, command, model, o.String("config"), prompt, o.String("negative"),
            o.Has("guidance") ? o.Double("guidance") : 7.5, o.Has("steps") ? o.Int("steps", min: 1) : 50,
            o.String("sampler"), o.Flag("karras"), o.Has("seed") ? o.Long("seed") : 0, width, height,
            o.Has("n") ? o.Int("n", min: 1, max: 64) : 1, o.String("latents"), o.String("save-npy"), outPath,
            imagePath, maskPath, strength, control, o.Flag("vae-tiling"),
            o.String("preview"), o.Has("preview-every") ? o.Int("preview-every", min: 1) : 1, previewMode);
    }

    /// <summary>--controlnet X: the folder X, else the ControlNet named X of the pipeline folder (--model, or --config
    /// for a single-file checkpoint): &lt;model&gt;/controlnet-X or one model_index.json names (Pipelines/PipelineControlNets).</summary>
    static string ControlNetFolder(string command, string x, string model, string? config)
    {
        if (Directory.Exists(x)) return x;
        string? pipeline = Directory.Exists(model) ? model : config is not null && Directory.Exists(config) ? config : null;
        var nets = pipeline is null ? [] : PipelineControlNets.List(pipeline);
        return PipelineControlNets.Find(nets, x)?.Folder ?? throw new CliException(pipeline is null
            ? $"{command}: --controlnet folder not found: {x}"
            : $"{command}: --controlnet folder not found: {x}, and {pipeline} has no ControlNet of that name (its ControlNets: {PipelineControlNets.Names(nets)})");
    }

    static double ParseNumber(string command, string flag, string s)
    {
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
            throw new CliException($"{command}: --{flag} expects a number, got '{s}'");
        return v;
    }

    static void CheckOutput(string command, string flag, string path, string extension)
    {
        if (!path.EndsWith(extension, StringComparison.OrdinalIgnoreCase)) throw new CliException($"{command}: --{flag} must be a {extension} file, got '{path}'");
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!Directory.Exists(dir)) throw new CliException($"{command}: --{flag}: output folder does not exist: {dir}");
    }

    /// <summary>The pipeline folder or single-file checkpoint.</summary>
    public IPipelineSource OpenSource()
    {
        PickleRefusal.ThrowIfPickle(Model);
        if (Directory.Exists(Model))
        {
            if (Config is not null) throw new CliException($"{Command}: --config is for a single-file checkpoint; --model is already a folder");
            return ModelIndex.Load(Model);
        }
        if (!File.Exists(Model)) throw new CliException($"{Command}: --model not found: {Model}");
        if (!Model.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new CliException($"{Command}: --model must be a pipeline folder or a .safetensors checkpoint, got '{Model}'");
        if (Config is null) throw new CliException($"{Command}: {Model} is a single-file checkpoint: pass --config DIR, a pipeline folder with its configs, tokenizer and scheduler");
        return SingleFilePipeline.Open(Model, Config);
    }

    /// <summary>The model's name for the parameters text: the folder's or the file's name.</summary>
    public string ModelName => Directory.Exists(Model) ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(Model))) : Path.GetFileNameWithoutExtension(Model);

    /// <summary>A PNG as (1, 3, H, W): 2·u8/255 − 1 (signed) or u8/255.</summary>
    public Tensor ReadImage(string flag, string path, bool signed)
    {
        var img = ReadImageFile(flag, path).WithChannels(3);
        var x = new float[img.Pixels.Length];
        for (int i = 0; i < x.Length; i++) x[i] = signed ? img.Pixels[i] / 255f * 2f - 1f : img.Pixels[i] / 255f;   // as torch: (u8 / 255), then 2x − 1
        return Tensor.FromArray(x, 1, img.Height, img.Width, 3).Permute(0, 3, 1, 2).Contiguous();                   // (1, 3, H, W)
    }

    /// <summary>A mask PNG as (1, 1, H, W) = luma / 255.</summary>
    public Tensor ReadMask(string path)
    {
        var img = ReadImageFile("mask", path).WithChannels(1);
        return Tensor.FromArray([.. img.Pixels.Select(v => v / 255f)], 1, 1, img.Height, img.Width);
    }

    Image8 ReadImageFile(string flag, string path)
    {
        if (!File.Exists(path)) throw new CliException($"{Command}: --{flag} file not found: {path}");
        return ImageFile.Read(path);                       // PNG, JPEG, BMP, GIF, WebP or TIFF
    }

    /// <summary>The run's size: --width/--height (txt2img; default the UNet's), or the --image's (which they must equal).</summary>
    public (int Width, int Height) Size(Tensor? image, int defaultWidth, int defaultHeight)
    {
        if (image is null) return (Width ?? defaultWidth, Height ?? defaultHeight);
        int w = image.Dim(3), h = image.Dim(2);
        if (w % 8 != 0 || h % 8 != 0)
            throw new CliException($"{Command}: --image {ImagePath} is {w}x{h}; Stable Diffusion needs sides that are multiples of 8 (resize or crop it, e.g. to {w / 8 * 8}x{h / 8 * 8})");
        if ((Width ?? w) != w || (Height ?? h) != h)
            throw new CliException($"{Command}: --image {ImagePath} is {w}x{h} but --width/--height ask for {Width ?? w}x{Height ?? h}; the image is not resized: resize it first or drop --width/--height");
        return (w, h);
    }

    /// <summary>The ControlNets with their control images, each checked against the run's size.</summary>
    public List<ControlNetInput> LoadControl(IPipelineSource source, int width, int height)
    {
        var inputs = new List<ControlNetInput>();
        if (Control.Count == 0) return inputs;
        var own = source is ModelIndex index ? index.ControlNets.Select(c => c.Folder).ToList() : [];
        if (Control[0].Folder is null && own.Count != Control.Count)
            throw new CliException(own.Count == 0
                ? $"{Command}: --control-image given but {Model} has no ControlNet: name one with --controlnet DIR"
                : $"{Command}: {Model} has {own.Count} ControlNet(s), {Control.Count} --control-image given (one each, in model_index.json's order)");
        for (int k = 0; k < Control.Count; k++)
        {
            var c = Control[k];
            var image = ReadImage("control-image", c.ImagePath, signed: false);
            if (image.Dim(3) != width || image.Dim(2) != height)
                throw new CliException($"{Command}: --control-image {c.ImagePath} is {image.Dim(3)}x{image.Dim(2)}, the output is {width}x{height}; the control image is not resized: give one of the output's size");
            inputs.Add(new ControlNetInput(ComponentLoader.LoadControlNet(c.Folder ?? own[k]), image, c.Scale, c.Start, c.End));
        }
        return inputs;
    }

    /// <summary>The --latents tensor, checked to be <paramref name="want"/> and finite; null without --latents.</summary>
    public Tensor? ReadLatents(int[] want, int width, int height)
    {
        if (Latents is null) return null;
        var (shape, data) = ReadTensorFile(Latents);
        if (!shape.SequenceEqual(want))
            throw new CliException($"{Command}: --latents {Latents} has shape ({string.Join(", ", shape)}), {N} image(s) of {width}x{height} need ({string.Join(", ", want)})");
        if (data.Any(v => !float.IsFinite(v))) throw new CliException($"{Command}: --latents {Latents} holds non-finite values");
        return Tensor.FromArray(data, shape);
    }

    (int[] Shape, float[] Data) ReadTensorFile(string path)
    {
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return Npy.ReadFloat32(path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var f = SafeTensorsFile.Open(path);
            string name = f.Names.Count == 1 ? f.Names[0]
                : f.Contains("latents") ? "latents" : throw new InvalidDataException($"{path}: holds {f.Names.Count} tensors; expected one, or one named \"latents\"");
            return (Array.ConvertAll(f.Info(name).Shape, d => checked((int)d)), f.ReadFloat32(name));
        }
        throw new CliException($"{Command}: --latents must be a .npy or .safetensors file, got '{path}'");
    }
}

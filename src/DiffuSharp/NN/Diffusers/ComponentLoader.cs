// Building a diffusers component from its folder, as from_pretrained does: config.json → the model (random
// weights from a fixed seed), then every parameter from diffusion_pytorch_model.safetensors (F32, F16, BF16 or F64,
// read into float32). A missing or wrongly shaped tensor, or a tensor the model does not have, is an error naming
// the tensor and the file; so is a folder holding only a pickle (.bin), which is never read. Weights are read one
// tensor at a time (SafeTensorsStream), so a 3.4 GB float32 UNet loads without a second whole-file copy.
using DiffuSharp.IO;

namespace DiffuSharp.NN.Diffusers;

public static class ComponentLoader
{
    /// <summary>Weight file names tried in order (the fp16 variant is what `variant="fp16"` saves).</summary>
    static readonly string[] WeightFiles = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"];

    /// <summary>The folder's config.json "_class_name" (UNet2DConditionModel, AutoencoderKL, …).</summary>
    public static string ClassName(string folder)
        => ConfigJson.Load(ConfigPath(folder)).ClassName ?? throw new InvalidDataException($"{ConfigPath(folder)}: no \"_class_name\"");

    public static UNet2DConditionModel LoadUNet2DCondition(string folder)
        => LoadWeights(new UNet2DConditionModel(UNet2DConditionConfig.Load(ConfigPath(folder)), new Rng(0)), folder);

    public static UNet2DModel LoadUNet2D(string folder)
        => LoadWeights(new UNet2DModel(UNet2DConfig.Load(ConfigPath(folder)), new Rng(0)), folder);

    public static AutoencoderKL LoadAutoencoderKL(string folder)
        => LoadWeights(new AutoencoderKL(AutoencoderKLConfig.Load(ConfigPath(folder)), new Rng(0)), folder);

    public static ControlNetModel LoadControlNet(string folder)
        => LoadWeights(new ControlNetModel(ControlNetConfig.Load(ConfigPath(folder)), new Rng(0)), folder);

    /// <summary>Any supported component, by the class its config.json names.</summary>
    public static Module Load(string folder) => ClassName(folder) switch
    {
        "UNet2DConditionModel" => LoadUNet2DCondition(folder),
        "UNet2DModel" => LoadUNet2D(folder),
        "AutoencoderKL" => LoadAutoencoderKL(folder),
        "ControlNetModel" => LoadControlNet(folder),
        var other => throw new InvalidDataException($"{ConfigPath(folder)}: \"_class_name\" \"{other}\" is not a supported component (UNet2DConditionModel, UNet2DModel, AutoencoderKL, ControlNetModel)"),
    };

    static string ConfigPath(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: component folder not found");
        return Path.Combine(folder, "config.json");
    }

    /// <summary>The weights file of a component folder.</summary>
    public static string WeightsPath(string folder)
    {
        foreach (var name in WeightFiles)
            if (File.Exists(Path.Combine(folder, name))) return Path.Combine(folder, name);
        if (File.Exists(Path.Combine(folder, "diffusion_pytorch_model.bin")))
            throw new InvalidDataException($"{Path.Combine(folder, "diffusion_pytorch_model.bin")}: pickle checkpoints are not read; convert it to safetensors (diffusers: save_pretrained(..., safe_serialization=True))");
        throw new FileNotFoundException($"{folder}: no {WeightFiles[0]}", Path.Combine(folder, WeightFiles[0]));
    }

    static T LoadWeights<T>(T model, string folder) where T : Module
    {
        using (var file = SafeTensorsStream.Open(WeightsPath(folder)))
            LoadInto(model, file.SourceName, file.Names, file.Contains, n => file.Info(n).Shape, file.ReadFloat32);
        model.Eval();
        return model;
    }

    /// <summary>Copies every parameter from an in-memory file: all must be there with their shapes, and nothing else may be.</summary>
    public static void LoadInto(Module model, SafeTensorsFile file)
        => LoadInto(model, file.SourceName, file.Names, file.Contains, n => file.Info(n).Shape, (n, dst) => file.ReadFloat32(n).AsSpan().CopyTo(dst));

    delegate void ReadInto(string name, Span<float> dst);

    static void LoadInto(Module model, string source, IReadOnlyList<string> fileNames, Func<string, bool> contains, Func<string, long[]> shapeOf, ReadInto read)
    {
        var mine = model.NamedParameters().ToList();
        var names = mine.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, p) in mine)
        {
            if (!contains(name))
                throw new InvalidDataException($"{source}: missing tensor '{name}' of the {model.GetType().Name} ({ShapeUtil.Format(p.ShapeSpan)})");
            var shape = shapeOf(name);
            if (shape.Length != p.Rank || shape.Where((d, i) => d != p.ShapeSpan[i]).Any())
                throw new InvalidDataException($"{source}: tensor '{name}' has shape ({string.Join(", ", shape)}), the {model.GetType().Name} expects {ShapeUtil.Format(p.ShapeSpan)}");
        }
        var extra = fileNames.Where(n => !names.Contains(n)).ToList();
        if (extra.Count > 0)
            throw new InvalidDataException($"{source}: {extra.Count} tensor(s) the {model.GetType().Name} does not have, e.g. '{extra[0]}'");
        foreach (var (name, p) in mine) read(name, p.Data);
    }
}

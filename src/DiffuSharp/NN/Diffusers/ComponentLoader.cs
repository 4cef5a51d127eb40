// Building a diffusers component as from_pretrained does: config.json → the model (random weights from a fixed
// seed), then every parameter from a tensor source (NN/ModuleLoading.cs): the folder's
// diffusion_pytorch_model.safetensors (F32, F16, BF16 or F64, read into float32), or one component of a single-file
// checkpoint (Pipelines/SingleFileCheckpoint.cs). A missing or wrongly shaped tensor, or a tensor the model does not
// have, is an error naming the tensor and the file; so is a folder holding only a pickle (.bin), which is never read.
// The config is read (and validated) before the weights. A folder's weights file is opened lazily
// (SafeTensorsFile.OpenLazy) and read one tensor at a time, so a 3.4 GB float32 UNet loads without a whole-file copy.
using DiffuSharp.IO;

namespace DiffuSharp.NN.Diffusers;

/// <summary>Builds diffusers components as from_pretrained does: config.json first (validated), then every weight from
/// the folder's diffusion_pytorch_model.safetensors (or its fp16 variant) or a single-file checkpoint's component;
/// missing, extra or misshapen tensors are errors naming the tensor and the file.</summary>
public static class ComponentLoader
{
    /// <summary>Weight file names tried in order (the fp16 variant is what `variant="fp16"` saves).</summary>
    static readonly string[] WeightFiles = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"];

    /// <summary>The folder's config.json "_class_name" (UNet2DConditionModel, AutoencoderKL, …).</summary>
    public static string ClassName(string folder)
        => ConfigJson.Load(ConfigPath(folder)).ClassName ?? throw new InvalidDataException($"{ConfigPath(folder)}: no \"_class_name\"");

    /// <summary>A UNet2DConditionModel from a diffusers component folder (config.json and its safetensors
    /// weights).</summary>
    public static UNet2DConditionModel LoadUNet2DCondition(string folder)
        => LoadWeights(new UNet2DConditionModel(UNet2DConditionConfig.Load(ConfigPath(folder)), new Rng(0)), FolderWeights(folder));

    /// <summary>A UNet2DModel from a diffusers component folder (config.json and its safetensors weights).</summary>
    public static UNet2DModel LoadUNet2D(string folder)
        => LoadWeights(new UNet2DModel(UNet2DConfig.Load(ConfigPath(folder)), new Rng(0)), FolderWeights(folder));

    /// <summary>An AutoencoderKL from a diffusers component folder (config.json and its safetensors weights).</summary>
    public static AutoencoderKL LoadAutoencoderKL(string folder)
        => LoadWeights(new AutoencoderKL(AutoencoderKLConfig.Load(ConfigPath(folder)), new Rng(0)), FolderWeights(folder));

    /// <summary>A ControlNetModel from a diffusers component folder (config.json and its safetensors
    /// weights).</summary>
    public static ControlNetModel LoadControlNet(string folder)
        => LoadWeights(new ControlNetModel(ControlNetConfig.Load(ConfigPath(folder)), new Rng(0)), FolderWeights(folder));

    /// <summary>A UNet2DConditionModel from its config.json and weights under diffusers' names (a folder's file, or
    /// <c>SingleFileCheckpoint.Component("unet")</c>).</summary>
    public static UNet2DConditionModel LoadUNet2DCondition(string configPath, ITensorSource weights)
        => LoadWeights(new UNet2DConditionModel(UNet2DConditionConfig.Load(configPath), new Rng(0)), weights);

    /// <summary>A UNet2DModel from its config.json and weights under diffusers' names.</summary>
    public static UNet2DModel LoadUNet2D(string configPath, ITensorSource weights)
        => LoadWeights(new UNet2DModel(UNet2DConfig.Load(configPath), new Rng(0)), weights);

    /// <summary>An AutoencoderKL from its config.json and weights under diffusers' names (a folder's file, or
    /// <c>SingleFileCheckpoint.Component("vae")</c>).</summary>
    public static AutoencoderKL LoadAutoencoderKL(string configPath, ITensorSource weights)
        => LoadWeights(new AutoencoderKL(AutoencoderKLConfig.Load(configPath), new Rng(0)), weights);

    /// <summary>A ControlNetModel from its config.json and weights under diffusers' names.</summary>
    public static ControlNetModel LoadControlNet(string configPath, ITensorSource weights)
        => LoadWeights(new ControlNetModel(ControlNetConfig.Load(configPath), new Rng(0)), weights);

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

    /// <summary>The folder's weights file: its header read and validated, each tensor read from disk when loaded.</summary>
    static ITensorSource FolderWeights(string folder) => new SafeTensorsSource(SafeTensorsFile.OpenLazy(WeightsPath(folder)));

    static T LoadWeights<T>(T model, ITensorSource weights) where T : Module
    {
        model.LoadFrom(weights);
        model.Eval();
        return model;
    }

    /// <summary>Copies every parameter from an in-memory file: all must be there with their shapes, and nothing else may be.</summary>
    public static void LoadInto(Module model, SafeTensorsFile file) => model.LoadFrom(new SafeTensorsSource(file));
}

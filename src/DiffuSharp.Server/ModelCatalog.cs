// The models the server offers: every subfolder of the models folder holding model.json (an improved-diffusion pixel
// model) or model_index.json: a diffusers DDPMPipeline (a UNet2DModel in unet/ and its scheduler in scheduler/, a pixel
// model too, sampled with any scheduler) or a text-to-image pipeline, with its ControlNets (model_index.json's and its
// controlnet-NAME/ subfolders, each by name). Requests name a model by its folder name and a ControlNet by its name, and
// the names are looked up in these lists; a request never supplies a path.
using DiffuSharp.Models;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;

namespace DiffuSharp.Server;

public enum ModelKind { Pixel, Pipeline }

/// <summary>One model as the page and the API list it.</summary>
/// <param name="Name">the folder's name</param>
/// <param name="ClassNames">class-conditional pixel models: one name per label (Models/ClassNames.cs: class_names.txt, else
/// Fashion-MNIST's for 10 classes, else "0".."k−1")</param>
/// <param name="Guidance">pixel models: trained with a null label, so cfg_scale applies</param>
/// <param name="ControlNets">pipelines: how many ControlNets go with the folder (<paramref name="Nets"/>)</param>
/// <param name="TrainSteps">the trained process's T: no run takes more steps</param>
/// <param name="DiffusersUNet">a pixel model in a diffusers DDPMPipeline folder (UNet2DModel + scheduler), not a model.json folder</param>
/// <param name="Nets">pipelines: the ControlNets by name, model_index.json's and the controlnet-NAME/ subfolders
/// (Pipelines/PipelineControlNets.cs); the first is the one a request's single control image steers</param>
public sealed record ModelEntry(string Name, ModelKind Kind, string Folder, int Width, int Height, int Channels,
    IReadOnlyList<string> ClassNames, bool Guidance, int ControlNets, string DefaultSampler, int TrainSteps, bool DiffusersUNet = false,
    IReadOnlyList<NamedControlNet>? Nets = null)
{
    /// <summary>The ControlNets by name (empty for pixel models).</summary>
    public IReadOnlyList<NamedControlNet> ControlNetList => Nets ?? [];
}

public sealed class ModelCatalog
{
    /// <summary>Optional file in a pixel model's folder: one class name per line, label order.</summary>
    public const string ClassNamesFile = ClassNames.FileName;

    readonly Dictionary<string, ModelEntry> _byName;
    public IReadOnlyList<ModelEntry> Models { get; }
    /// <summary>Folders that looked like models but could not be read, with the reason (shown in the log).</summary>
    public IReadOnlyList<string> Skipped { get; }

    ModelCatalog(List<ModelEntry> models, List<string> skipped)
    {
        Models = models;
        Skipped = skipped;
        _byName = models.ToDictionary(m => m.Name, StringComparer.Ordinal);
    }

    public ModelEntry? Find(string? name) => name is not null && _byName.TryGetValue(name, out var m) ? m : null;

    /// <summary>Scans the subfolders of each folder in <paramref name="roots"/> (missing folders are skipped).</summary>
    public static ModelCatalog Scan(params string[] roots)
    {
        var models = new List<ModelEntry>();
        var skipped = new List<string>();
        foreach (var root in roots)
        {
            if (!Directory.Exists(root)) continue;
            foreach (var dir in Directory.EnumerateDirectories(root).Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileName(dir);
                if (models.Any(m => m.Name == name)) continue;
                try
                {
                    if (File.Exists(Path.Combine(dir, ModelFolder.ConfigFile)) && File.Exists(Path.Combine(dir, ModelFolder.WeightsFile)))
                        models.Add(Pixel(name, dir));
                    else if (File.Exists(Path.Combine(dir, "model_index.json")))
                    {
                        var index = ModelIndex.Load(dir);
                        models.Add(index.ClassName == DdpmPipeline ? DiffusersPixel(name, index) : Pipeline(name, dir));
                    }
                }
                catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException or System.Text.Json.JsonException)
                {
                    skipped.Add($"{dir}: {e.Message}");
                }
            }
        }
        return new ModelCatalog(models, skipped);
    }

    static ModelEntry Pixel(string name, string dir)
    {
        var config = ModelFolder.LoadConfig(dir);
        string[] classes = [];
        if (config.ClassCount is int k)
            classes = ClassNames.For(dir, config)?.ToArray()
                ?? Enumerable.Range(0, k).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return new ModelEntry(name, ModelKind.Pixel, dir, config.ImageSize, config.ImageSize, config.InChannels, classes,
            config.NullLabel is not null, 0, "DDIM", config.DiffusionSteps);
    }

    /// <summary>model_index.json's class of a diffusers pixel-space pipeline: a UNet2DModel and a scheduler.</summary>
    public const string DdpmPipeline = "DDPMPipeline";

    static ModelEntry DiffusersPixel(string name, ModelIndex index)
    {
        if (!index.Components.TryGetValue("unet", out var unet) || unet.ClassName != "UNet2DModel")
            throw new InvalidDataException($"{index.Root}: a {DdpmPipeline} needs a unet component of class UNet2DModel");
        var config = UNet2DConfig.Load(index.ConfigPath("unet"));
        if (config.SampleSize is not int side)
            throw new InvalidDataException($"{unet.ConfigPath}: sample_size is missing (the size of the images the model makes)");
        if (config.InChannels is not (1 or 3))
            throw new InvalidDataException($"{unet.ConfigPath}: in_channels {config.InChannels}; a pixel model here makes gray (1) or RGB (3) images");
        if (config.OutChannels != config.InChannels && config.OutChannels != 2 * config.InChannels)
            throw new InvalidDataException($"{unet.ConfigPath}: out_channels {config.OutChannels} is neither in_channels {config.InChannels} nor twice it (a learned variance)");
        if (!File.Exists(unet.WeightsPath()))
            throw new FileNotFoundException($"{index.Root}: the UNet's weights are missing: {unet.WeightsPath()}", unet.WeightsPath());
        var scheduler = Schedulers.SchedulerConfig.Load(index.ConfigPath("scheduler"));
        string[] classes = config.NumClassEmbeds is int k
            ? ClassNames.For(index.Root, k)?.ToArray() ?? Enumerable.Range(0, k).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray()
            : [];
        return new ModelEntry(name, ModelKind.Pixel, index.Root, side, side, config.InChannels, classes, false, 0,
            SamplerName(scheduler), scheduler.NumTrainTimesteps, DiffusersUNet: true);
    }

    /// <summary>The page's name of a folder's scheduler (sd-webui's where it has one, else the class name).</summary>
    static string SamplerName(Schedulers.SchedulerConfig scheduler)
        => Schedulers.SchedulerFactory.Samplers.FirstOrDefault(s => s.ClassName == scheduler.ClassName)?.DisplayName ?? scheduler.ClassName;

    static ModelEntry Pipeline(string name, string dir)
    {
        var index = ModelIndex.Load(dir);
        var unet = NN.Diffusers.UNet2DConditionConfig.Load(index.ConfigPath("unet"));
        var vae = NN.Diffusers.AutoencoderKLConfig.Load(index.ConfigPath("vae"));
        int side = unet.SampleSize * (1 << (vae.BlockOutChannels.Length - 1));
        var scheduler = Schedulers.SchedulerConfig.Load(index.ConfigPath("scheduler"));
        var nets = PipelineControlNets.List(index);
        return new ModelEntry(name, ModelKind.Pipeline, dir, side, side, vae.OutChannels, [], true, nets.Count, SamplerName(scheduler), scheduler.NumTrainTimesteps,
            Nets: nets);
    }
}

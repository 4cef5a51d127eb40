// The models the server offers: every subfolder of the models folder holding model.json (an improved-diffusion pixel
// model) or model_index.json (a diffusers pipeline, with its ControlNets). Requests name a model by its folder name
// and the name is looked up in this list; a request never supplies a path.
using DiffuSharp.Models;
using DiffuSharp.Pipelines;

namespace DiffuSharp.Server;

public enum ModelKind { Pixel, Pipeline }

/// <summary>One model as the page and the API list it.</summary>
/// <param name="Name">the folder's name</param>
/// <param name="ClassNames">class-conditional pixel models: one name per label (Models/ClassNames.cs: class_names.txt, else
/// Fashion-MNIST's for 10 classes, else "0".."k−1")</param>
/// <param name="Guidance">pixel models: trained with a null label, so cfg_scale applies</param>
/// <param name="ControlNets">pipelines: the ControlNet components of model_index.json</param>
/// <param name="TrainSteps">the trained process's T: no run takes more steps</param>
public sealed record ModelEntry(string Name, ModelKind Kind, string Folder, int Width, int Height, int Channels,
    IReadOnlyList<string> ClassNames, bool Guidance, int ControlNets, string DefaultSampler, int TrainSteps);

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
                        models.Add(Pipeline(name, dir));
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

    static ModelEntry Pipeline(string name, string dir)
    {
        var index = ModelIndex.Load(dir);
        var unet = NN.Diffusers.UNet2DConditionConfig.Load(index.ConfigPath("unet"));
        var vae = NN.Diffusers.AutoencoderKLConfig.Load(index.ConfigPath("vae"));
        int side = unet.SampleSize * (1 << (vae.BlockOutChannels.Length - 1));
        var scheduler = Schedulers.SchedulerConfig.Load(index.ConfigPath("scheduler"));
        string sampler = Schedulers.SchedulerFactory.Samplers.FirstOrDefault(s => s.ClassName == scheduler.ClassName)?.DisplayName ?? scheduler.ClassName;
        return new ModelEntry(name, ModelKind.Pipeline, dir, side, side, 3, [], true, index.ControlNets.Count, sampler, scheduler.NumTrainTimesteps);
    }
}

// A diffusers DDPMPipeline folder (diffusers 0.27.2, pipelines/ddpm/pipeline_ddpm.py, as save_pretrained writes it):
//   model_index.json                  {"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
//                                      "unet": ["diffusers", "UNet2DModel"]}
//   unet/config.json + diffusion_pytorch_model.safetensors
//   scheduler/scheduler_config.json
// Save writes one (model_index.json last); Load reads one back as a UNet2DModel and its scheduler config, any other
// pipeline class or component class being an error naming model_index.json.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Pipelines;

/// <summary>Writes and reads a diffusers DDPMPipeline folder: model_index.json, unet/ (config.json and safetensors
/// weights) and scheduler/scheduler_config.json. Any other pipeline or component class is refused naming
/// model_index.json.</summary>
public static class DdpmPipelineFolder
{
    /// <summary>The pipeline's "_class_name" ("DDPMPipeline") and the index file's name ("model_index.json").</summary>
    public const string ClassName = "DDPMPipeline", IndexFile = "model_index.json";

    /// <summary>Writes the folder (created if needed). weights: the UNet's (name, shape, values), e.g. EMA values;
    /// the scheduler is saved as its class (DDPMScheduler for a pipeline diffusers' DDPMPipeline samples as trained).</summary>
    public static void Save(string folder, UNet2DConfig unet, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        SchedulerConfig scheduler, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        UNet2DFolder.Save(Path.Combine(folder, "unet"), unet, weights, metadata);
        Directory.CreateDirectory(Path.Combine(folder, "scheduler"));
        scheduler.Save(Path.Combine(folder, "scheduler", "scheduler_config.json"));
        var index = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["_diffusers_version"] = SchedulerConfig.DiffusersVersion,
            ["scheduler"] = new JsonArray("diffusers", scheduler.ClassName),
            ["unet"] = new JsonArray("diffusers", "UNet2DModel"),
        };
        AtomicFile.WriteJson(Path.Combine(folder, IndexFile), index);
    }

    /// <summary>True when <paramref name="folder"/> has a model_index.json naming DDPMPipeline.</summary>
    public static bool IsDdpmPipeline(string folder)
    {
        string path = Path.Combine(folder, IndexFile);
        if (!File.Exists(path)) return false;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("_class_name", out var c)
                && c.ValueKind == JsonValueKind.String && c.GetString() == ClassName;
        }
        catch (JsonException) { return false; }
    }

    /// <summary>The UNet (eval mode) and the scheduler config of a DDPMPipeline folder.</summary>
    public static (UNet2DModel Unet, SchedulerConfig Scheduler) Load(string folder)
    {
        var index = ModelIndex.Load(folder);
        string path = Path.Combine(folder, IndexFile);
        if (index.ClassName != ClassName) throw new InvalidDataException($"{path}: \"_class_name\" is \"{index.ClassName}\", expected \"{ClassName}\"");
        var unet = index.Require("unet");
        if (unet.ClassName != "UNet2DModel") throw new InvalidDataException($"{path}: component 'unet' is {unet.ClassName}, expected UNet2DModel");
        var sched = index.Require("scheduler");
        if (!sched.IsScheduler) throw new InvalidDataException($"{path}: component 'scheduler' is {sched.ClassName}, not a scheduler");
        var model = ComponentLoader.LoadUNet2D(unet.ConfigPath, index.Weights("unet"));
        return (model, SchedulerConfig.Load(sched.ConfigPath));
    }
}

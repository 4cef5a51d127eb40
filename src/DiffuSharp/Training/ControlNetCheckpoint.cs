// train-controlnet checkpoints: <out>/checkpoint/ holds
//   controlnet_config.json    the ControlNet's config (diffusers' keys)
//   scheduler_config.json     the noise schedule and prediction type it trains with (the pipeline's scheduler config)
//   model.safetensors         the ControlNet's live weights (diffusers' names)
//   ema.safetensors           the EMA (same names), rate in the metadata
//   optimizer.safetensors     AdamW's m and v as flat tensors; its step in the metadata
//   trainer.json              step, RNG states, data position, training config, objective, condition
//   manifest.json             every file's size and SHA-256 (checked on load)
// Written into a temporary folder and swapped in whole (RunFolder.Replace). The frozen UNet and text encoder, the
// latents and the control images are the run folder's, not the checkpoint's.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;

namespace DiffuSharp.Training;

/// <summary>Saves and loads <see cref="ControlNetTrainer"/> checkpoints (the layout is in the file header).</summary>
public static class ControlNetCheckpoint
{
    const string NetConfigFile = "controlnet_config.json", SchedulerFile = "scheduler_config.json",
        WeightsFile = "model.safetensors", EmaFile = "ema.safetensors", OptimizerFile = "optimizer.safetensors";

    /// <summary>Writes <c>outFolder/checkpoint/</c> whole, replacing the previous one only once the new one is complete;
    /// refuses non-finite weights. Returns the checkpoint folder.</summary>
    public static string Save(ControlNetTrainer trainer, string outFolder)
    {
        trainer.CheckFinite();
        string final = Path.Combine(outFolder, Checkpoint.FolderName);
        RunFolder.Replace(final, tmp =>
        {
            var state = trainer.ExportState();
            var meta = Checkpoint.StepMetadata(state.Step);
            AtomicFile.WriteJson(Path.Combine(tmp, NetConfigFile), ControlNetFolder.ConfigJson(trainer.Net.Config));
            trainer.NoiseScheduler.Save(Path.Combine(tmp, SchedulerFile));
            SafeTensorsWriter.Write(Path.Combine(tmp, WeightsFile), trainer.ExportWeights(), meta);
            if (trainer.Ema is { } ema)
                Checkpoint.WriteEma(Path.Combine(tmp, EmaFile), trainer.ExportWeights(ema), ema.Rate, meta);
            Checkpoint.WriteOptimizer(Path.Combine(tmp, OptimizerFile), trainer.Optimizer, meta);
            var json = Checkpoint.StateToJson(state, trainer.Config);
            json["objective"] = trainer.Objective.ToJson();
            json["condition"] = ControlImages.Name(trainer.Condition);
            json["train_images"] = trainer.Data.Count;
            AtomicFile.WriteJson(Path.Combine(tmp, "trainer.json"), json);
            CheckpointManifest.Write(tmp, new JsonObject { ["controlnet"] = ControlNetFolder.ConfigJson(trainer.Net.Config) }, trainer.Config.ToJson());
        });
        return final;
    }

    /// <summary>The training config, objective and condition stored in a checkpoint folder (the manifest checked first).</summary>
    public static (TrainConfig Config, LatentObjective Objective, ControlCondition Condition) ReadSettings(string checkpointFolder)
    {
        CheckpointManifest.Verify(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        var config = TrainConfig.FromJson(root["config"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"config\""), path);
        var objective = LatentObjective.FromJson(root["objective"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"objective\""), path);
        string condition = root["condition"] is JsonValue cv && cv.TryGetValue(out string? s) ? s
            : throw new InvalidDataException($"{path}: missing \"condition\" (not a train-controlnet checkpoint)");
        try { return (config, objective, ControlImages.Parse(condition)); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}"); }
    }

    /// <summary>Rebuilds a trainer from a checkpoint: the ControlNet, EMA, optimizer, RNGs and data position, over the
    /// given frozen UNet and text encoder (the run's) and data.</summary>
    public static ControlNetTrainer Load(string checkpointFolder, UNet2DConditionModel unet, ClipTextModel textEncoder, ClipTokenizer tokenizer,
        CaptionedLatents data, ControlImages control, Func<TrainConfig, TrainConfig>? adjust = null)
    {
        var (config, objective, condition) = ReadSettings(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        if (condition != control.Condition)
            throw new ArgumentException($"the checkpoint trains the {ControlImages.Name(condition)} condition, these control images are {ControlImages.Name(control.Condition)}");
        if (root["train_images"] is JsonValue tv && tv.TryGetValue(out int trained) && trained != data.Count)
            throw new ArgumentException($"the checkpoint was trained on {trained} images, this data has {data.Count}: resume with the same --data and --max-train");
        if (adjust is not null) config = adjust(config);
        var netConfig = ControlNetConfig.Load(Path.Combine(checkpointFolder, NetConfigFile));
        var scheduler = SchedulerConfig.Load(Path.Combine(checkpointFolder, SchedulerFile));
        var trainer = new ControlNetTrainer(unet, textEncoder, scheduler, config, objective, tokenizer, data, control, netConfig.ConditioningEmbeddingOutChannels);
        string fromUNet = JsonSerializer.Serialize(ControlNetFolder.ConfigJson(trainer.Net.Config)), saved = JsonSerializer.Serialize(ControlNetFolder.ConfigJson(netConfig));
        if (fromUNet != saved)
            throw new InvalidDataException($"{Path.Combine(checkpointFolder, NetConfigFile)}: the ControlNet does not match the run's UNet (was pipeline/unet replaced?)");
        var weights = SafeTensorsFile.Open(Path.Combine(checkpointFolder, WeightsFile));
        trainer.Net.LoadStateDict(trainer.Net.NamedParameters().ToDictionary(p => p.Name, p => (p.Param.Shape.ToArray(), Checkpoint.ReadNamed(weights, p.Name, p.Param.Count))),
            strict: true, source: Path.Combine(checkpointFolder, WeightsFile));
        trainer.Net.Train();
        if (trainer.Ema is { } ema) Checkpoint.ReadEma(Path.Combine(checkpointFolder, EmaFile), ema, trainer.Net);
        Checkpoint.ReadOptimizer(Path.Combine(checkpointFolder, OptimizerFile), trainer.Optimizer);
        trainer.ImportState(Checkpoint.StateFromJson(root, path));
        return trainer;
    }
}

// train-latent checkpoints: <out>/checkpoint/ holds
//   unet_config.json, text_encoder_config.json   the two models' configs (diffusers' and transformers' keys)
//   scheduler_config.json                        the noise schedule and prediction type (a DDPMScheduler config)
//   model.safetensors                            the live weights, "unet.…" and "text_encoder.…" names
//   ema.safetensors                              the EMA (same names), rate in the metadata
//   optimizer.safetensors                        AdamW's m and v as flat tensors; its step in the metadata
//   trainer.json                                 step, RNG states, data position, training config and objective
//   manifest.json                                every file's size and SHA-256 (checked on load)
// Written into a temporary folder and swapped in whole (RunFolder.Replace), as the other trainers' checkpoints. The
// latents, captions and tokenizer are the run folder's (LatentRun), not the checkpoint's.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.IO;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;

namespace DiffuSharp.Training;

/// <summary>Saves and loads <see cref="LatentTrainer"/> checkpoints (the layout is in the file header).</summary>
public static class LatentCheckpoint
{
    const string UNetConfigFile = "unet_config.json", TextConfigFile = "text_encoder_config.json", SchedulerFile = "scheduler_config.json",
        WeightsFile = "model.safetensors", EmaFile = "ema.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "trainer.json";

    /// <summary>Writes <c>outFolder/checkpoint/</c> whole, replacing the previous one only once the new one is complete;
    /// refuses non-finite weights. Returns the checkpoint folder.</summary>
    public static string Save(LatentTrainer trainer, string outFolder)
    {
        trainer.CheckFinite();
        string final = Path.Combine(outFolder, Checkpoint.FolderName);
        RunFolder.Replace(final, tmp =>
        {
            var state = trainer.ExportState();
            var meta = Checkpoint.StepMetadata(state.Step);
            AtomicFile.WriteJson(Path.Combine(tmp, UNetConfigFile), UNet2DConditionFolder.ConfigJson(trainer.UNetConfig));
            AtomicFile.WriteJson(Path.Combine(tmp, TextConfigFile), ClipTextFolder.ConfigJson(trainer.TextConfig));
            trainer.NoiseScheduler.Save(Path.Combine(tmp, SchedulerFile));
            SafeTensorsWriter.Write(Path.Combine(tmp, WeightsFile), trainer.ExportWeights(), meta);
            if (trainer.Ema is { } ema)
                Checkpoint.WriteEma(Path.Combine(tmp, EmaFile), trainer.ExportWeights(ema), ema.Rate, meta);
            Checkpoint.WriteOptimizer(Path.Combine(tmp, OptimizerFile), trainer.Optimizer, meta);
            var json = Checkpoint.StateToJson(state, trainer.Config);
            json["objective"] = trainer.Objective.ToJson();
            json["train_images"] = trainer.Data.Count;
            json["captions"] = (trainer.Data.Drawing ?? new CaptionOptions()).ToJson();
            AtomicFile.WriteJson(Path.Combine(tmp, StateFile), json);
            CheckpointManifest.Write(tmp, new JsonObject
            {
                ["unet"] = UNet2DConditionFolder.ConfigJson(trainer.UNetConfig),
                ["text_encoder"] = ClipTextFolder.ConfigJson(trainer.TextConfig),
            }, trainer.Config.ToJson());
        });
        return final;
    }

    /// <summary>The training config and objective stored in a checkpoint folder (the manifest checked first).</summary>
    public static (TrainConfig Config, LatentObjective Objective) ReadSettings(string checkpointFolder)
    {
        CheckpointManifest.Verify(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        var config = TrainConfig.FromJson(root["config"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"config\""), path);
        var objective = LatentObjective.FromJson(root["objective"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"objective\" (not a train-latent checkpoint)"), path);
        return (config, objective);
    }

    /// <summary>Rebuilds a trainer from a checkpoint: configs, weights, EMA, optimizer, RNGs and data position.</summary>
    public static LatentTrainer Load(string checkpointFolder, ClipTokenizer tokenizer, CaptionedLatents data, Func<TrainConfig, TrainConfig>? adjust = null)
    {
        var (config, objective) = ReadSettings(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        if (root["train_images"] is JsonValue tv && tv.TryGetValue(out int trained) && trained != data.Count)
            throw new ArgumentException($"the checkpoint was trained on {trained} images, this data has {data.Count}: resume with the same --data and --max-train");
        if (adjust is not null) config = adjust(config);
        // Runs from before the caption settings were stored drew with the defaults of then (no bare captions).
        data = data with { Drawing = root["captions"] is JsonObject c ? CaptionOptions.FromJson(c, path) : new CaptionOptions() };
        var unet = UNet2DConditionConfig.Load(Path.Combine(checkpointFolder, UNetConfigFile));
        var text = ClipTextConfig.Load(Path.Combine(checkpointFolder, TextConfigFile));
        var scheduler = SchedulerConfig.Load(Path.Combine(checkpointFolder, SchedulerFile));
        var trainer = new LatentTrainer(unet, text, scheduler, config, objective, tokenizer, data);
        var weights = SafeTensorsFile.Open(Path.Combine(checkpointFolder, WeightsFile));
        trainer.Model.LoadStateDict(trainer.Model.NamedParameters().ToDictionary(p => p.Name, p => (p.Param.Shape.ToArray(), Checkpoint.ReadNamed(weights, p.Name, p.Param.Count))),
            strict: true, source: Path.Combine(checkpointFolder, WeightsFile));
        trainer.Model.Train();
        if (trainer.Ema is { } ema) Checkpoint.ReadEma(Path.Combine(checkpointFolder, EmaFile), ema, trainer.Model);
        Checkpoint.ReadOptimizer(Path.Combine(checkpointFolder, OptimizerFile), trainer.Optimizer);
        trainer.ImportState(Checkpoint.StateFromJson(root, path));
        return trainer;
    }
}

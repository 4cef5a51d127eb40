// UNet2DModel (DDPM) training checkpoints: <out>/checkpoint/ holds
//   config.json + diffusion_pytorch_model.safetensors   the live weights as a diffusers UNet2DModel folder
//   ema.safetensors                                     the EMA (same names), max decay in the metadata
//   optimizer.safetensors                               AdamW's m and v as flat tensors; its step in the metadata
//   scheduler_config.json                               the training noise schedule (DDPMScheduler)
//   trainer.json                                        step, RNG states (data order, timesteps, noise, dropout), data
//                                                       position, the training config and the DDPM objective
//   manifest.json                                       every file's size and SHA-256 (checked on load)
// Written into a temporary folder and swapped in whole (RunFolder.Replace), as the other trainers' checkpoints are.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Training;

/// <summary>Checkpoints of <see cref="DdpmTrainer"/>: the live weights as a diffusers UNet2DModel folder, the EMA,
/// AdamW's moments, the training noise schedule, trainer.json and a manifest, written as a set and swapped in
/// whole.</summary>
public static class DdpmCheckpoint
{
    const string EmaFile = "ema.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "trainer.json";
    /// <summary>The training noise schedule's file name in the checkpoint (a DDPMScheduler config).</summary>
    public const string SchedulerFile = "scheduler_config.json";

    /// <summary>Writes the trainer's checkpoint into <paramref name="outFolder"/>/checkpoint, replacing the previous
    /// one atomically, and returns the checkpoint folder's path; refuses non-finite weights, EMA values or optimizer
    /// moments.</summary>
    public static string Save(DdpmTrainer trainer, string outFolder)
    {
        trainer.CheckFinite();
        string final = Path.Combine(outFolder, Checkpoint.FolderName);
        RunFolder.Replace(final, tmp =>
        {
            var state = trainer.ExportState();
            var meta = Checkpoint.StepMetadata(state.Step);
            UNet2DFolder.Save(tmp, trainer.UNetConfig, trainer.ExportWeights(), meta);
            trainer.Objective.Scheduler.Save(Path.Combine(tmp, SchedulerFile));
            if (trainer.Ema is { } ema)
                Checkpoint.WriteEma(Path.Combine(tmp, EmaFile), trainer.ExportWeights(ema), ema.Rate, meta, rateKey: "ema_max_decay");
            Checkpoint.WriteOptimizer(Path.Combine(tmp, OptimizerFile), trainer.Optimizer, meta);
            var json = Checkpoint.StateToJson(state, trainer.Config);
            json["objective"] = trainer.Objective.ToJson();
            json["train_images"] = trainer.TrainImages;
            AtomicFile.WriteJson(Path.Combine(tmp, StateFile), json);
            CheckpointManifest.Write(tmp, UNet2DFolder.ConfigJson(trainer.UNetConfig), trainer.Config.ToJson());
        });
        return final;
    }

    /// <summary>The UNet config, training config and objective stored in a checkpoint folder.</summary>
    public static (UNet2DConfig UNet, TrainConfig Config, DdpmObjective Objective) ReadSettings(string checkpointFolder)
    {
        CheckpointManifest.Verify(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        var config = TrainConfig.FromJson(root["config"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"config\""), path);
        var objective = DdpmObjective.FromJson(root["objective"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"objective\" (not a UNet2DModel checkpoint)"), path);
        var unet = UNet2DConfig.Load(Path.Combine(checkpointFolder, UNet2DFolder.ConfigFile));
        return (unet, config, objective);
    }

    /// <summary>How many images the checkpoint's run trained on (null for a checkpoint that does not say).</summary>
    public static int? TrainImages(string checkpointFolder)
        => Checkpoint.ReadState(checkpointFolder, out _)["train_images"] is JsonValue v && v.TryGetValue(out int n) ? n : null;

    /// <summary>Rebuilds a trainer from a checkpoint: configs, weights, EMA, optimizer, RNGs and data position.</summary>
    public static DdpmTrainer Load(string checkpointFolder, ImageDataset data, Func<TrainConfig, TrainConfig>? adjust = null)
    {
        var (unetConfig, config, objective) = ReadSettings(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        if (root["train_images"] is JsonValue tv && tv.TryGetValue(out int trained) && trained != data.Count)
            throw new ArgumentException($"the checkpoint was trained on {trained} images, this data has {data.Count}: resume with the same --data and --max-images");
        if (adjust is not null) config = adjust(config);
        var trainer = new DdpmTrainer(unetConfig, config, objective, data);
        ComponentLoader.LoadInto(trainer.Model, SafeTensorsFile.Open(Path.Combine(checkpointFolder, UNet2DFolder.WeightsFile)));
        trainer.Model.Train();
        if (trainer.Ema is { } ema) Checkpoint.ReadEma(Path.Combine(checkpointFolder, EmaFile), ema, trainer.Model);
        Checkpoint.ReadOptimizer(Path.Combine(checkpointFolder, OptimizerFile), trainer.Optimizer);
        trainer.ImportState(Checkpoint.StateFromJson(root, path));
        return trainer;
    }
}

// train-vae checkpoints: <out>/checkpoint/ holds
//   config.json + diffusion_pytorch_model.safetensors   the live weights as a diffusers AutoencoderKL folder
//   ema.safetensors                                     the EMA (same names), rate in the metadata
//   optimizer.safetensors                               AdamW's m and v as flat tensors; its step in the metadata
//   trainer.json                                        step, RNG states (data order, posterior noise), data position,
//                                                       the training config and the VAE objective (Checkpoint's format)
//   manifest.json                                       every file's size and SHA-256 (checked on load)
// Written into a temporary folder and swapped in whole (RunFolder.Replace), as the diffusion checkpoints are.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Training;

/// <summary>Checkpoints of the VAE trainer: the live weights as a diffusers AutoencoderKL folder, the EMA, AdamW's
/// moments, trainer.json and a manifest, written as a set and swapped in whole.</summary>
public static class VaeCheckpoint
{
    const string EmaFile = "ema.safetensors", OptimizerFile = "optimizer.safetensors", StateFile = "trainer.json";

    /// <summary>Writes the trainer's checkpoint into <paramref name="outFolder"/>/checkpoint, replacing the previous
    /// one atomically, and returns the checkpoint folder's path; refuses non-finite weights, EMA values or optimizer
    /// moments.</summary>
    public static string Save(VaeTrainer trainer, string outFolder)
    {
        trainer.CheckFinite();
        string final = Path.Combine(outFolder, Checkpoint.FolderName);
        RunFolder.Replace(final, tmp =>
        {
            var state = trainer.ExportState();
            var meta = Checkpoint.StepMetadata(state.Step);
            VaeFolder.Save(tmp, trainer.VaeConfig, trainer.ExportWeights(), meta);
            if (trainer.Ema is { } ema)
                Checkpoint.WriteEma(Path.Combine(tmp, EmaFile), trainer.ExportWeights(ema), ema.Rate, meta);
            Checkpoint.WriteOptimizer(Path.Combine(tmp, OptimizerFile), trainer.Optimizer, meta);
            var json = Checkpoint.StateToJson(state, trainer.Config);
            json["objective"] = trainer.Objective.ToJson();
            json["train_images"] = trainer.TrainImages;
            AtomicFile.WriteJson(Path.Combine(tmp, StateFile), json);
            CheckpointManifest.Write(tmp, VaeFolder.ConfigJson(trainer.VaeConfig), trainer.Config.ToJson());
        });
        return final;
    }

    /// <summary>The training config and objective stored in a checkpoint folder.</summary>
    public static (TrainConfig Config, VaeObjective Objective) ReadSettings(string checkpointFolder)
    {
        CheckpointManifest.Verify(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        var config = TrainConfig.FromJson(root["config"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"config\""), path);
        var objective = VaeObjective.FromJson(root["objective"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"objective\" (not a train-vae checkpoint)"), path);
        return (config, objective);
    }

    /// <summary>Rebuilds a trainer from a checkpoint: config, weights, EMA, optimizer, RNGs and data position.
    /// data: the padded images, as for the constructor.</summary>
    public static VaeTrainer Load(string checkpointFolder, ImageDataset data, Func<TrainConfig, TrainConfig>? adjust = null)
    {
        var (config, objective) = ReadSettings(checkpointFolder);
        var root = Checkpoint.ReadState(checkpointFolder, out string path);
        if (root["train_images"] is JsonValue tv && tv.TryGetValue(out int trained) && trained != data.Count)
            throw new ArgumentException($"the checkpoint was trained on {trained} images, this data has {data.Count}: resume with the same --data and --max-train");
        if (adjust is not null) config = adjust(config);
        var vaeConfig = AutoencoderKLConfig.Load(Path.Combine(checkpointFolder, VaeFolder.ConfigFile));
        var trainer = new VaeTrainer(vaeConfig, config, objective, data);
        ComponentLoader.LoadInto(trainer.Model, SafeTensorsFile.Open(Path.Combine(checkpointFolder, VaeFolder.WeightsFile)));
        trainer.Model.Train();
        if (trainer.Ema is { } ema) Checkpoint.ReadEma(Path.Combine(checkpointFolder, EmaFile), ema, trainer.Model);
        Checkpoint.ReadOptimizer(Path.Combine(checkpointFolder, OptimizerFile), trainer.Optimizer);
        trainer.ImportState(Checkpoint.StateFromJson(root, path));
        return trainer;
    }
}

// Training checkpoints: <out>/checkpoint/ holds
//   model.safetensors + model.json     the live weights, as a model folder (SPEC.md)
//   ema_<rate>.safetensors             one per EMA rate, same names (improved-diffusion's ema_<rate>_<step>.pt)
//   optimizer.safetensors              AdamW's m and v as flat tensors in parameter order; step in the metadata
//   trainer.json                       step, every RNG state (data order, timesteps, noise, dropout, labels), the data
//                                      loader's position, the loss-aware sampler's history, the training config
//   manifest.json                      every file's size and SHA-256 and the model/training settings (checked on load)
// Crash safety: the whole set is written (each file through AtomicFile) into <out>/checkpoint.tmp-<random>/, then
// the folders are swapped (RunFolder.Replace): checkpoint → checkpoint.old-<random>, tmp → checkpoint, the old one
// deleted, its markers first. A crash while writing leaves the previous checkpoint untouched; a crash between the
// two renames leaves the previous set as checkpoint.old-*, which Locate() falls back to and RunFolder.Tidy() renames
// back. A set without trainer.json is never used. Save refuses non-finite weights, EMAs or optimizer moments.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Diffusion;
using DiffuSharp.IO;
using DiffuSharp.Models;

namespace DiffuSharp.Training;

/// <summary>Training checkpoints of the improved-diffusion trainer: live weights and model.json, one file per EMA rate,
/// AdamW's moments, trainer.json (step, RNG states, data position, sampler history) and a manifest, written as a set
/// and swapped in whole so a crash never destroys the previous checkpoint.</summary>
public static class Checkpoint
{
    /// <summary>The checkpoint folder's name inside a run's output folder.</summary>
    public const string FolderName = "checkpoint";
    const string OptimizerFile = "optimizer.safetensors", StateFile = "trainer.json";
    const int FormatVersion = 1;

    /// <summary>The file name of the EMA with decay <paramref name="rate"/>, e.g. "ema_0.9999.safetensors" (round-trip
    /// formatting, invariant culture).</summary>
    public static string EmaFileName(double rate) => $"ema_{rate.ToString("R", CultureInfo.InvariantCulture)}.safetensors";

    /// <summary>Writes the trainer's full state to <c>outFolder/checkpoint/</c>, replacing the previous one atomically.</summary>
    public static string Save(Trainer trainer, string outFolder)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        trainer.CheckFinite();                                   // never replace a good checkpoint with NaNs
        string final = Path.Combine(outFolder, FolderName);
        RunFolder.Replace(final, tmp =>
        {
            var state = trainer.ExportState();
            var meta = StepMetadata(state.Step);
            ModelFolder.Save(tmp, trainer.ModelConfig, trainer.ExportWeights(), meta);
            foreach (var ema in trainer.Emas)
                WriteEma(Path.Combine(tmp, EmaFileName(ema.Rate)), trainer.ExportWeights(ema), ema.Rate, meta);
            WriteOptimizer(Path.Combine(tmp, OptimizerFile), trainer.Optimizer, meta);
            ModelFolder.WriteText(Path.Combine(tmp, StateFile), StateToJson(state, trainer.Config).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            CheckpointManifest.Write(tmp, trainer.ModelConfig.ToJson(), trainer.Config.ToJson());
        });
        return final;
    }

    /// <summary>The checkpoint folder to resume from: outFolder/checkpoint, or the newest complete checkpoint.old-*
    /// left by a crash during the swap. Throws DirectoryNotFoundException naming outFolder when there is none.</summary>
    public static string Locate(string outFolder)
    {
        string final = Path.Combine(outFolder, FolderName);
        if (File.Exists(Path.Combine(final, StateFile))) return final;
        var fallback = Directory.Exists(outFolder)
            ? Directory.EnumerateDirectories(outFolder, FolderName + ".old-*")
                .Where(d => File.Exists(Path.Combine(d, StateFile)))
                .OrderByDescending(d => File.GetLastWriteTimeUtc(Path.Combine(d, StateFile))).FirstOrDefault()
            : null;
        return fallback ?? throw new DirectoryNotFoundException($"no checkpoint to resume from: {final}{Path.DirectorySeparatorChar}{StateFile} does not exist");
    }

    /// <summary>The training config stored in a checkpoint folder.</summary>
    public static TrainConfig ReadConfig(string checkpointFolder)
    {
        CheckpointManifest.Verify(checkpointFolder);
        var root = ReadState(checkpointFolder, out string path);
        return TrainConfig.FromJson(root["config"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"config\""), path);
    }

    /// <summary>
    /// Rebuilds a trainer from a checkpoint folder: model.json, the training config (adjusted by <paramref name="adjust"/>,
    /// e.g. a longer step budget), weights, optimizer, EMAs, RNGs, data position and sampler history.
    /// </summary>
    public static Trainer Load(string checkpointFolder, ImageDataset data, Func<TrainConfig, TrainConfig>? adjust = null, Distributed.Mpi? world = null)
    {
        CheckpointManifest.Verify(checkpointFolder);
        var root = ReadState(checkpointFolder, out string path);
        var config = TrainConfig.FromJson(root["config"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"config\""), path);
        if (adjust is not null) config = adjust(config);
        var modelConfig = ModelFolder.LoadConfig(checkpointFolder);
        var trainer = new Trainer(modelConfig, config, data, world);

        ModelFolder.LoadWeights(trainer.Model, Path.Combine(checkpointFolder, ModelFolder.WeightsFile));
        foreach (var ema in trainer.Emas)
            ReadEma(Path.Combine(checkpointFolder, EmaFileName(ema.Rate)), ema, trainer.Model, $"checkpoint has no EMA for rate {ema.Rate}");
        ReadOptimizer(Path.Combine(checkpointFolder, OptimizerFile), trainer.Optimizer);
        trainer.ImportState(StateFromJson(root, path));
        return trainer;
    }

    /// <summary>Parses a checkpoint folder's trainer.json alone (config and state), as a resume does before it reads the weights.</summary>
    internal static (TrainConfig Config, TrainerState State) ReadTrainerFile(string checkpointFolder)
    {
        var root = ReadState(checkpointFolder, out string path);
        var config = TrainConfig.FromJson(root["config"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"config\""), path);
        return (config, StateFromJson(root, path));
    }

    /// <summary>The metadata every file of a checkpoint carries: the step it was written at.</summary>
    internal static Dictionary<string, string> StepMetadata(long step) => new() { ["step"] = step.ToString(CultureInfo.InvariantCulture) };

    /// <summary>Writes AdamW's moments as two flat tensors "exp_avg" and "exp_avg_sq" with its step as "adamw_step" in the
    /// metadata (what <see cref="ReadOptimizer"/> reads; every trainer's layout).</summary>
    internal static void WriteOptimizer(string optPath, AdamW optimizer, IReadOnlyDictionary<string, string> meta)
    {
        var opt = optimizer.ExportState();
        SafeTensorsWriter.Write(optPath,
            [("exp_avg", [opt.ExpAvg[0].Length], opt.ExpAvg[0]), ("exp_avg_sq", [opt.ExpAvgSq[0].Length], opt.ExpAvgSq[0])],
            new Dictionary<string, string>(meta) { ["optimizer"] = "AdamW", ["adamw_step"] = opt.Step.ToString(CultureInfo.InvariantCulture) });
    }

    /// <summary>Writes an EMA's weights (one tensor per parameter, as <see cref="ReadEma"/> reads them) with its rate in
    /// the metadata under <paramref name="rateKey"/>.</summary>
    internal static void WriteEma(string file, IEnumerable<(string Name, int[] Shape, float[] Data)> weights, double rate,
        IReadOnlyDictionary<string, string> meta, string rateKey = "ema_rate")
        => SafeTensorsWriter.Write(file, weights, new Dictionary<string, string>(meta) { [rateKey] = rate.ToString("R", CultureInfo.InvariantCulture) });

    /// <summary>Restores AdamW's moments and step from a checkpoint's optimizer.safetensors (every trainer's layout:
    /// "exp_avg", "exp_avg_sq" and the "adamw_step" metadata); a missing, malformed or non-finite file is refused by name.</summary>
    internal static void ReadOptimizer(string optPath, AdamW optimizer)
    {
        if (!File.Exists(optPath)) throw new FileNotFoundException($"checkpoint optimizer state is missing: {optPath}", optPath);
        var opt = SafeTensorsFile.Open(optPath);
        if (!opt.Metadata.TryGetValue("adamw_step", out var stepText) || !long.TryParse(stepText, NumberStyles.Integer, CultureInfo.InvariantCulture, out long adamStep))
            throw new InvalidDataException($"{optPath}: metadata lacks an integer \"adamw_step\"");
        float[] m = opt.ReadFloat32("exp_avg"), v = opt.ReadFloat32("exp_avg_sq");
        ModelFolder.RefuseNonFinite(m, "exp_avg", optPath);
        ModelFolder.RefuseNonFinite(v, "exp_avg_sq", optPath);
        try { optimizer.ImportState(new AdamWState(adamStep, [m], [v])); }
        catch (ArgumentException e) { throw new InvalidDataException($"{optPath}: {e.Message}"); }
    }

    /// <summary>Restores an EMA's copy of <paramref name="model"/>'s parameters from <paramref name="file"/> (one tensor per
    /// parameter, by name; every trainer's layout); a missing file is refused with <paramref name="missing"/> and its path.</summary>
    internal static void ReadEma(string file, Ema ema, NN.Module model, string missing = "checkpoint has no EMA")
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"{missing}: {file} is missing", file);
        var st = SafeTensorsFile.Open(file);
        ema.ImportState(new EmaState(ema.Rate, [model.NamedParameters().SelectMany(p => ReadNamed(st, p.Name, p.Param.Count)).ToArray()]));
    }

    internal static float[] ReadNamed(SafeTensorsFile file, string name, int count)
    {
        if (!file.Contains(name)) throw new InvalidDataException($"{file.SourceName} lacks parameter '{name}'");
        var data = file.ReadFloat32(name);
        if (data.Length != count) throw new InvalidDataException($"{file.SourceName}: '{name}' has {data.Length} values, the model expects {count}");
        ModelFolder.RefuseNonFinite(data, name, file.SourceName);
        return data;
    }

    internal static JsonObject ReadState(string folder, out string path)
    {
        path = Path.Combine(folder, StateFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint state not found: {path}", path);
        var node = StrictJson.ParseFile(path);
        if (node is not JsonObject o) throw new InvalidDataException($"{path}: expected a JSON object");
        if (o["format"] is not JsonValue fv || !fv.TryGetValue(out int format) || format != FormatVersion) throw new InvalidDataException($"{path}: unsupported checkpoint format (expected \"format\": {FormatVersion})");
        return o;
    }

    internal static JsonObject StateToJson(TrainerState s, TrainConfig config)
    {
        var rngs = new JsonObject();
        foreach (var (name, r) in s.Rngs) rngs[name] = RngToJson(r);
        var o = new JsonObject
        {
            ["format"] = FormatVersion,
            ["step"] = s.Step,
            ["rngs"] = rngs,
            ["data"] = new JsonObject { ["epoch_start_rng"] = RngToJson(s.Data.EpochStart), ["batches_in_epoch"] = s.Data.BatchesInEpoch, ["epoch"] = s.Data.Epoch, ["batch_size"] = s.Data.BatchSize },
            ["config"] = config.ToJson(),
        };
        if (s.Sampler is { } smp)
            o["sampler"] = new JsonObject
            {
                ["history"] = new JsonArray(smp.History.Select(h => (JsonNode)Hex(BitConverter.DoubleToUInt64Bits(h))).ToArray()),
                ["counts"] = new JsonArray(smp.Counts.Select(c => (JsonNode)c).ToArray()),
            };
        return o;
    }

    internal static TrainerState StateFromJson(JsonObject o, string path)
    {
        try
        {
            var rngs = new Dictionary<string, RngState>();
            foreach (var (name, node) in (JsonObject)o["rngs"]!) rngs[name] = RngFromJson(node!);
            var d = (JsonObject)o["data"]!;
            var data = new DataLoaderState(RngFromJson(d["epoch_start_rng"]!), d["batches_in_epoch"]!.GetValue<int>(), d["epoch"]!.GetValue<int>(),
                d["batch_size"]?.GetValue<int>() ?? 0);
            LossSecondMomentState? sampler = null;
            if (o["sampler"] is JsonObject smp)
                sampler = new LossSecondMomentState(
                    smp["history"]!.AsArray().Select(h => BitConverter.UInt64BitsToDouble(ParseHex(h!))).ToArray(),
                    smp["counts"]!.AsArray().Select(c => c!.GetValue<int>()).ToArray());
            return new TrainerState(o["step"]!.GetValue<long>(), rngs, data, sampler);
        }
        catch (Exception e) when (e is NullReferenceException or InvalidCastException or InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: malformed trainer state ({e.Message})");
        }
    }

    // RNG words as hex strings: JSON numbers cannot hold 64-bit integers exactly, and the spare normal is stored by its bits.
    static JsonObject RngToJson(RngState r) => new()
    {
        ["s"] = new JsonArray(Hex(r.S0), Hex(r.S1), Hex(r.S2), Hex(r.S3)),
        ["has_spare"] = r.HasSpare,
        ["spare_bits"] = Hex(BitConverter.DoubleToUInt64Bits(r.Spare)),
    };

    static RngState RngFromJson(JsonNode n)
    {
        var s = n["s"]!.AsArray();
        if (s.Count != 4) throw new FormatException($"RNG state needs 4 words, got {s.Count}");
        return new RngState(ParseHex(s[0]!), ParseHex(s[1]!), ParseHex(s[2]!), ParseHex(s[3]!),
            n["has_spare"]!.GetValue<bool>(), BitConverter.UInt64BitsToDouble(ParseHex(n["spare_bits"]!)));
    }

    static string Hex(ulong v) => v.ToString("x16", CultureInfo.InvariantCulture);
    static ulong ParseHex(JsonNode n) => ulong.Parse(n.GetValue<string>(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}

// The model-folder contract of SPEC.md: <folder>/model.safetensors (float32, improved-diffusion's state-dict names)
// and <folder>/model.json (improved-diffusion's model_and_diffusion_defaults() flags). Writes are atomic per file.
using System.Text;
using DiffuSharp.Diffusion;
using DiffuSharp.IO;
using DiffuSharp.NN;

namespace DiffuSharp.Models;

/// <summary>
/// A model folder: <c>model.safetensors</c> (the UNet's weights under improved-diffusion's state-dict names) and
/// <c>model.json</c> (its flags, <see cref="ModelConfig"/>). <c>var (config, unet) = ModelFolder.Load(dir);</c> gives
/// the network ready to sample; <c>config.ToDiffusionConfig()</c> its diffusion, for <see cref="DiffusionFactory.Create"/>.
/// </summary>
public static class ModelFolder
{
    /// <summary>The weights file of a model folder.</summary>
    public const string WeightsFile = "model.safetensors";
    /// <summary>The flags file of a model folder (<see cref="ModelConfig"/>).</summary>
    public const string ConfigFile = "model.json";

    /// <summary>The diffusion half of the flags, as create_gaussian_diffusion takes them.</summary>
    public static DiffusionConfig ToDiffusionConfig(this ModelConfig c) => new(
        DiffusionSteps: c.DiffusionSteps, NoiseSchedule: c.NoiseSchedule, LearnSigma: c.LearnSigma, SigmaSmall: c.SigmaSmall,
        UseKl: c.UseKl, PredictXStart: c.PredictXStart, RescaleTimesteps: c.RescaleTimesteps,
        RescaleLearnedSigmas: c.RescaleLearnedSigmas, TimestepRespacing: c.TimestepRespacing, PredictV: c.PredictV);

    /// <summary>Writes model.json and model.safetensors (named float32 tensors) into folder, creating it.</summary>
    public static void Save(string folder, ModelConfig config, IEnumerable<(string Name, int[] Shape, float[] Data)> weights,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFile), weights, metadata);
        WriteText(Path.Combine(folder, ConfigFile), config.ToJsonString() + "\n");
    }

    /// <summary>Reads model.json; a missing folder or file is a FileNotFoundException / DirectoryNotFoundException naming it.</summary>
    public static ModelConfig LoadConfig(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder not found: {folder}");
        return ModelConfig.Load(Path.Combine(folder, ConfigFile));
    }

    /// <summary>Builds the UNet that model.json describes and loads model.safetensors into it (strict names and shapes).</summary>
    public static (ModelConfig Config, UNetModel Model) Load(string folder)
    {
        var config = LoadConfig(folder);
        var model = new UNetModel(config.ToUNetConfig(), new Rng(0));
        LoadWeights(model, Path.Combine(folder, WeightsFile));
        model.Eval();
        return (config, model);
    }

    /// <summary>Loads a safetensors state dict into model (every parameter present, shapes equal, no extras).</summary>
    public static void LoadWeights(Module model, string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"weights not found: {path}", path);
        var file = SafeTensorsFile.Open(path);
        var state = new Dictionary<string, (int[] Shape, float[] Data)>();
        foreach (var name in file.Names)
        {
            var data = file.ReadFloat32(name);
            RefuseNonFinite(data, name, path);
            state[name] = (Array.ConvertAll(file.Info(name).Shape, d => checked((int)d)), data);
        }
        model.LoadStateDict(state, strict: true, source: path);
    }

    /// <summary>Throws InvalidDataException naming the file and tensor when data holds a NaN or ±∞: such weights
    /// would sample NaN, which the PNG grid refuses only after the whole run.</summary>
    public static void RefuseNonFinite(ReadOnlySpan<float> data, string tensor, string path)
    {
        for (int i = 0; i < data.Length; i++)
            if (!float.IsFinite(data[i]))
                throw new InvalidDataException($"{path}: tensor '{tensor}' holds {(float.IsNaN(data[i]) ? "NaN" : data[i] > 0 ? "+inf" : "-inf")} at index {i}; non-finite weights are refused");
    }

    /// <summary>A module's parameters as named tensors, for <see cref="SafeTensorsWriter"/>.</summary>
    public static IEnumerable<(string Name, int[] Shape, float[] Data)> Weights(Module model)
        => model.NamedParameters().Select(p => (p.Name, p.Param.Shape, p.Param.ToArray()));

    internal static void WriteText(string path, string text)
        => AtomicFile.Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
}

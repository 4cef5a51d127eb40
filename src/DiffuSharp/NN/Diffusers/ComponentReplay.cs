// Replaying a recorded diffusers component call (a NAME.io.safetensors beside its NAME/ folder, see the fixtures'
// README): build the component from the folder its metadata names ("weights_dir"), feed the recorded `input.*`
// tensors as the metadata's "model_class" is called, and compare every recorded `output.*` with what we compute,
// as relative L2 error ||ours − ref|| / ||ref|| and max |ours − ref|. The tests and a verify command share this.
using System.Text.Json;
using DiffuSharp.IO;

namespace DiffuSharp.NN.Diffusers;

/// <summary>One compared output: its name, shape, relative L2 error and largest absolute difference.</summary>
public sealed record ReplayResult(string Output, int[] Shape, double RelErr, double MaxAbs);

/// <summary>Replays a recorded diffusers component call (NAME.io.safetensors beside the NAME/ folder) and compares
/// every recorded output with DiffuSharp's, as relative L2 error and largest absolute difference; shared by the tests
/// and the verify command.</summary>
public static class ComponentReplay
{
    /// <summary>Replays one recorded call; every `output.*` tensor of the file is compared (an output we cannot
    /// produce is an error naming it). <paramref name="folder"/> overrides the metadata's weights_dir; the metadata's
    /// "call" may set guess_mode, and input.class_labels is passed when recorded. <paramref name="unetFolder"/> (ControlNet
    /// only) names the UNet that the recorded unet_sample_with_residuals was computed with.</summary>
    public static IReadOnlyList<ReplayResult> Run(string ioPath, string? folder = null, string? unetFolder = null)
    {
        var io = SafeTensorsFile.Open(ioPath);
        string cls = Meta(io, "model_class");
        folder ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(ioPath))!, Meta(io, "weights_dir"));
        var ours = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var call = io.Metadata.TryGetValue("call", out var callJson) ? JsonDocument.Parse(callJson).RootElement : default;
        bool guessMode = call.ValueKind == JsonValueKind.Object && call.TryGetProperty("guess_mode", out var g) && g.GetBoolean();
        int[]? classLabels = io.Contains("input.class_labels") ? io.ReadInt64("input.class_labels").Select(v => (int)v).ToArray() : null;
        using (Tensor.NoGrad())
        {
            switch (cls)
            {
                case "UNet2DModel":
                {
                    var m = ComponentLoader.LoadUNet2D(folder);
                    ours["sample"] = m.Forward(Read(io, "input.sample"), Timesteps(io), classLabels);
                    break;
                }
                case "UNet2DConditionModel":
                {
                    var m = ComponentLoader.LoadUNet2DCondition(folder);
                    ours["sample"] = m.Forward(Read(io, "input.sample"), Timesteps(io), Read(io, "input.encoder_hidden_states"), classLabels);
                    break;
                }
                case "AutoencoderKL":
                {
                    var m = ComponentLoader.LoadAutoencoderKL(folder);
                    var posterior = m.Encode(Read(io, "input.image"));
                    ours["latent_mean"] = posterior.Mean;
                    ours["latent_logvar"] = posterior.LogVar;
                    ours["latent_std"] = posterior.Std;
                    ours["decoded_from_latents"] = m.Decode(Read(io, "input.latents"));
                    ours["reconstruction_mode"] = m.Forward(Read(io, "input.image"));
                    break;
                }
                case "ControlNetModel":
                {
                    var m = ComponentLoader.LoadControlNet(folder);
                    var sample = Read(io, "input.sample");
                    var timesteps = Timesteps(io);
                    var context = Read(io, "input.encoder_hidden_states");
                    double scale = io.Contains("input.conditioning_scale") ? Read(io, "input.conditioning_scale").Item() : 1.0;
                    var r = m.Forward(sample, timesteps, context, Read(io, "input.controlnet_cond"), scale, guessMode, classLabels);
                    for (int i = 0; i < r.DownBlockResSamples.Count; i++) ours[$"down_block_res_sample.{i:D2}"] = r.DownBlockResSamples[i];
                    ours["mid_block_res_sample"] = r.MidBlockResSample;
                    if (unetFolder is not null)
                        ours["unet_sample_with_residuals"] = ComponentLoader.LoadUNet2DCondition(unetFolder)
                            .Forward(sample, timesteps, context, downBlockAdditionalResiduals: r.DownBlockResSamples, midBlockAdditionalResidual: r.MidBlockResSample);
                    break;
                }
                case "CLIPTextModel":
                {
                    var m = DiffuSharp.NN.Clip.ClipTextModel.FromFolder(folder);
                    var ids = io.ReadInt64("input.input_ids").Select(v => checked((int)v)).ToArray();
                    var y = m.Forward(ids, (int)io.Info("input.input_ids").Shape[0]);
                    ours["last_hidden_state"] = y.LastHiddenState;
                    ours["pooler_output"] = y.PoolerOutput;
                    for (int i = 0; i < y.HiddenStates.Count; i++) ours[$"hidden_states.{i:00}"] = y.HiddenStates[i];
                    break;
                }
                default:
                    throw new InvalidDataException($"{ioPath}: model_class \"{cls}\" is not a component this replay builds");
            }
        }
        var results = new List<ReplayResult>();
        foreach (var name in io.Names.Where(n => n.StartsWith("output.", StringComparison.Ordinal)))
        {
            string key = name["output.".Length..];
            if (!ours.TryGetValue(key, out var mine))
                throw new InvalidDataException($"{ioPath}: recorded output '{key}' is not produced by this replay of {cls}");
            results.Add(Compare(key, mine, io.ReadFloat64(name), io.Info(name).Shape, ioPath));
        }
        return results;
    }

    /// <summary>||ours − ref|| / ||ref|| and max |ours − ref| over every element (the shapes must agree).</summary>
    public static ReplayResult Compare(string name, Tensor ours, double[] reference, long[] shape, string source = "reference")
    {
        var o = ours.Contiguous().ToArray();
        if (!ShapeUtil.Equal(ours.Shape, shape.Select(d => (int)d).ToArray()))
            throw new InvalidDataException($"{source}: output '{name}' is ({string.Join(", ", shape)}), ours is {ShapeUtil.Format(ours.Shape)}");
        double diff = 0, norm = 0, maxAbs = 0;
        for (int i = 0; i < o.Length; i++)
        {
            double d = o[i] - reference[i];
            diff += d * d;
            norm += reference[i] * reference[i];
            maxAbs = Math.Max(maxAbs, Math.Abs(d));
        }
        double rel = norm > 0 ? Math.Sqrt(diff / norm) : Math.Sqrt(diff);
        if (double.IsNaN(diff)) rel = maxAbs = double.NaN;
        return new ReplayResult(name, ours.Shape, rel, maxAbs);
    }

    static string Meta(SafeTensorsFile io, string key)
        => io.Metadata.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"{io.SourceName}: metadata \"{key}\" missing");

    static Tensor Read(SafeTensorsFile io, string name)
    {
        if (!io.Contains(name)) throw new InvalidDataException($"{io.SourceName}: tensor '{name}' missing");
        var shape = io.Info(name).Shape.Select(d => (int)d).ToArray();
        return Tensor.FromArray(io.ReadFloat32(name), shape);
    }

    static Tensor Timesteps(SafeTensorsFile io)
    {
        const string name = "input.timestep";
        var info = io.Info(name);
        var values = info.DType is "I64" or "I32" ? io.ReadInt64(name).Select(v => (float)v).ToArray() : io.ReadFloat32(name);
        return Tensor.FromArray(values, info.Shape.Select(d => (int)d).ToArray());
    }
}

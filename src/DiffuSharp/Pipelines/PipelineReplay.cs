// Replaying a recorded diffusers pipeline run (pipelines/NAME.safetensors, see the fixtures' README.upstream.md,
// "Pipeline fixtures" / "Replaying a run"): load the pipeline folder its metadata names ("folder", beside the run
// file), build the recorded scheduler ("scheduler_class" + "scheduler_config"), call the pipeline with the recorded
// inputs, taking the recorded random draws (rng.NN) where diffusers drew, and compare the prompt embeddings, every
// step's latents, the final latents and the decoded image with what diffusers computed in float32.
// Runs of StableDiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionControlNetPipeline (one or several
// nets, from the folder or metadata "components") and StableDiffusionInpaintPipeline (4- and 9-channel UNets) replay; the other pipeline classes are refused
// by name.
using System.Text.Json;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Pipelines;

/// <summary>Replays a recorded diffusers pipeline run with the recorded inputs and random draws and compares the prompt
/// embeddings, every step's latents, the final latents and the image against diffusers' float32 values.</summary>
public static class PipelineReplay
{
    /// <summary>The parity contract of whole pipelines: ‖ours − ref‖ / ‖ref‖.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>The pipeline classes this replay runs.</summary>
    public static readonly IReadOnlyList<string> Supported = ["StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionControlNetPipeline", "StableDiffusionInpaintPipeline"];

    /// <summary>A run file records a pipeline call when its metadata names the pipeline class.</summary>
    public static bool IsPipelineRun(SafeTensorsFile file) => file.Metadata.ContainsKey("pipeline_class");

    /// <summary>Replays the run; one comparison (relative L2, max |Δ|) per recorded tensor compared.</summary>
    /// <param name="folder">the pipeline folder to use instead of the one the metadata names</param>
    public static IReadOnlyList<ReplayResult> Run(string runPath, string? folder = null)
    {
        var run = SafeTensorsFile.Open(runPath);
        string cls = Meta(run, "pipeline_class");
        if (!Supported.Contains(cls))
            throw new NotSupportedException($"{runPath}: pipeline class {cls} is not replayed yet (supported: {string.Join(", ", Supported)})");
        folder ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(runPath))!, Meta(run, "folder"));
        var scheduler = SchedulerFactory.Create(SchedulerConfig.FromJson(Meta(run, "scheduler_config"), runPath, Meta(run, "scheduler_class")));
        var index = ModelIndex.Load(folder);
        var pipe = StableDiffusionPipeline.Load(index).WithScheduler(scheduler);

        using var doc = JsonDocument.Parse(Meta(run, "call"));
        var call = doc.RootElement;
        string prompt = call.GetProperty("prompt").GetString()!;
        string? negative = call.TryGetProperty("negative_prompt", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
        double guidance = call.TryGetProperty("guidance_scale", out var g) ? g.GetDouble() : 7.5;
        int steps = call.TryGetProperty("num_inference_steps", out var s) ? s.GetInt32() : 50;
        int numImages = call.TryGetProperty("num_images_per_prompt", out var ni) ? ni.GetInt32() : 1;

        var steps_ = new List<Tensor>();
        void Record(int i, double t, Tensor latents) => steps_.Add(latents);
        var draws = new Queue<Tensor>(run.Names.Where(k => k.StartsWith("rng.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Select(k => Load(run, k)));
        Tensor? NextDraw() => draws.Count > 0 ? draws.Dequeue() : null;
        var noRng = new Rng(0);           // every draw of these runs is recorded; a further draw would be a replay error

        PipelineOutput output;
        if (cls == "StableDiffusionInpaintPipeline")
        {
            var image = ImageFromU8(run, "input.init_image");
            var mask = MaskFromU8(run, "input.mask_image");
            double strength = call.TryGetProperty("strength", out var st) ? st.GetDouble() : 1.0;
            var all = draws.ToList();
            draws.Clear();
            // setup draws: the image posterior (4-channel UNet or strength < 1), the noise, the masked-image posterior; then one per step
            int setup = pipe.UNet.Config.InChannels == 4 || strength < 1 ? 3 : 2;
            var request = new InpaintRequest(prompt, image, mask, strength, negative, guidance, steps, numImages, all.Take(setup).ToList(),
                all.Count > setup ? all.Skip(setup).ToList() : null);
            output = pipe.Inpaint(request, noRng, Record);
        }
        else if (cls != "StableDiffusionImg2ImgPipeline")
        {
            var latents = call.TryGetProperty("latents", out _) ? Load(run, "input.latents") : NextDraw();
            var control = cls == "StableDiffusionControlNetPipeline" ? ControlInputs(run, runPath, index, call) : null;
            var request = new Txt2ImgRequest(prompt, negative, guidance, steps, call.GetProperty("width").GetInt32(), call.GetProperty("height").GetInt32(), numImages, latents, control);
            output = pipe.Txt2Img(request, noRng, Record);
        }
        else
        {
            var image = ImageFromU8(run, "input.init_image");
            var request = new Img2ImgRequest(prompt, image, call.GetProperty("strength").GetDouble(), negative, guidance, steps, numImages, NextDraw(), NextDraw());
            output = pipe.Img2Img(request, noRng, Record);
        }
        if (draws.Count > 0) throw new InvalidDataException($"{runPath}: {draws.Count} recorded draw(s) left unused by the replay");

        var results = new List<ReplayResult>
        {
            Compare(run, "intermediate.prompt_embeds", output.PromptEmbeds),
            Compare(run, "intermediate.negative_prompt_embeds", output.NegativePromptEmbeds),
        };
        var recordedT = run.ReadFloat64OrInt("intermediate.timesteps");
        double tMismatch = recordedT.Length == output.Timesteps.Count ? recordedT.Where((t, i) => t != output.Timesteps[i]).Count() : double.NaN;
        results.Add(new ReplayResult("intermediate.timesteps", [recordedT.Length], tMismatch / recordedT.Length, tMismatch));
        for (int i = 0; i < steps_.Count; i++)
            if (run.Contains($"step{i:D2}.latents")) results.Add(Compare(run, $"step{i:D2}.latents", steps_[i]));
        results.Add(Compare(run, "output.latents", output.Latents));
        results.Add(Compare(run, "output.image", output.Image.Permute(0, 2, 3, 1)));   // ours (B, 3, H, W) → diffusers' (B, H, W, 3)
        return results;
    }

    /// <summary>The run's ControlNets (the folder's, or metadata "components": {"controlnet": "folder/sub" or a list}) with
    /// their control images (u8 / 255), scales and guidance windows.</summary>
    static List<ControlNetInput> ControlInputs(SafeTensorsFile run, string runPath, ModelIndex index, JsonElement call)
    {
        var folders = index.ControlNets.Select(c => c.Folder).ToList();
        using var components = JsonDocument.Parse(run.Metadata.GetValueOrDefault("components") ?? "{}");
        if (components.RootElement.TryGetProperty("controlnet", out var cn))
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(runPath))!;
            folders = cn.ValueKind == JsonValueKind.Array ? [.. cn.EnumerateArray().Select(e => Path.Combine(dir, e.GetString()!))] : [Path.Combine(dir, cn.GetString()!)];
        }
        double Pick(string key, int k, double fallback)
            => !call.TryGetProperty(key, out var v) ? fallback : v.ValueKind == JsonValueKind.Array ? v[k].GetDouble() : v.GetDouble();
        var images = call.GetProperty("image");
        var inputs = new List<ControlNetInput>();
        for (int k = 0; k < folders.Count; k++)
        {
            string tensor = (images.ValueKind == JsonValueKind.Array ? images[k] : images).GetString()!;
            var image = ImageFromU8(run, "input." + tensor.TrimStart('@'), signed: false);
            inputs.Add(new ControlNetInput(ComponentLoader.LoadControlNet(folders[k]), image, Pick("controlnet_conditioning_scale", k, 1.0),
                Pick("control_guidance_start", k, 0.0), Pick("control_guidance_end", k, 1.0)));
        }
        return inputs;
    }

    static ReplayResult Compare(SafeTensorsFile run, string name, Tensor ours)
        => ComponentReplay.Compare(name, ours, run.ReadFloat64(name), run.Info(name).Shape, run.SourceName);

    static Tensor Load(SafeTensorsFile run, string name) => Tensor.FromArray(run.ReadFloat32(name), [.. run.Info(name).Shape.Select(d => (int)d)]);

    /// <summary>A recorded uint8 RGB image (H, W, 3) as diffusers' VaeImageProcessor gives it: (1, 3, H, W) = 2 · u8 / 255 − 1
    /// (a control image: u8 / 255, not normalized).</summary>
    static Tensor ImageFromU8(SafeTensorsFile run, string name, bool signed = true)
    {
        var shape = run.Info(name).Shape;
        if (shape.Length != 3 || shape[2] != 3) throw new InvalidDataException($"{run.SourceName}: {name} is not an H×W×3 image");
        var u8 = run.ReadInt64(name);
        var x = new float[u8.Length];
        for (int i = 0; i < x.Length; i++) x[i] = signed ? u8[i] / 255f * 2f - 1f : u8[i] / 255f;   // float32 as torch: (u8 / 255) then 2x − 1
        return Tensor.FromArray(x, 1, (int)shape[0], (int)shape[1], 3).Permute(0, 3, 1, 2).Contiguous();   // (1, 3, H, W)
    }

    /// <summary>A recorded greyscale mask (H, W) as (1, 1, H, W) = u8 / 255.</summary>
    static Tensor MaskFromU8(SafeTensorsFile run, string name)
    {
        var shape = run.Info(name).Shape;
        if (shape.Length != 2) throw new InvalidDataException($"{run.SourceName}: {name} is not an H×W mask");
        return Tensor.FromArray([.. run.ReadInt64(name).Select(v => v / 255f)], 1, 1, (int)shape[0], (int)shape[1]);
    }

    /// <summary>Timesteps as recorded: int64, or float for σ-based schedulers.</summary>
    static double[] ReadFloat64OrInt(this SafeTensorsFile run, string name)
        => run.Info(name).DType.StartsWith('F') ? run.ReadFloat64(name) : [.. run.ReadInt64(name).Select(t => (double)t)];

    static string Meta(SafeTensorsFile f, string key)
        => f.Metadata.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"{f.SourceName}: metadata \"{key}\" missing");
}

// diffusharp verify-diffusers FILE...: replays reference recordings made with diffusers / transformers (the format of
// tests/DiffuSharp.Tests/Fixtures/diffusers/README.upstream.md) through DiffuSharp and prints one JSON line per
// compared tensor, {"file", "tensor", "rel_err", "max_abs", "tol", "ok"}; exits 1 when any tensor is beyond its
// tolerance. What a file holds is read from its contents:
//   - a scheduler run (metadata "scheduler_class"): timesteps, tables, every step's model input, previous sample and
//     x0 prediction, add_noise: max |ours − ref| / max |ref| ≤ 1e-5;
//   - a component call NAME.io.safetensors (metadata "model_class": UNet2DModel, UNet2DConditionModel,
//     AutoencoderKL, ControlNetModel, CLIPTextModel) beside its NAME/ folder: every `output.*`, ‖ours − ref‖ / ‖ref‖ ≤ 1e-4;
//   - a pipeline run pipelines/NAME.safetensors (metadata "pipeline_class": StableDiffusionPipeline,
//     StableDiffusionImg2ImgPipeline, StableDiffusionControlNetPipeline, StableDiffusionInpaintPipeline) beside its
//     pipeline folder: prompt embeddings, timesteps, every step's latents,
//     the final latents and the decoded image, ‖ours − ref‖ / ‖ref‖ ≤ 1e-4;
//   - a tokenizer case list (a .json with "cases", beside its folder of vocab.json + merges.txt): the ids of every
//     prompt, equal (rel_err is the fraction of differing ids).
using System.Globalization;
using System.Text.Json;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;

namespace DiffuSharp.Cli;

public static class VerifyDiffusersCommand
{
    /// <summary>The parity contract for whole components: relative L2 error.</summary>
    public const double ComponentTolerance = 1e-4;

    const string Summary = """
        Replays diffusers / transformers reference recordings through DiffuSharp and prints one JSON line per compared
        tensor: {"file", "tensor", "rel_err", "max_abs", "tol", "ok"}. Exits 1 when a tensor is beyond its tolerance.
        FILE is a scheduler run (sched_*.safetensors: tolerance 1e-5, max-norm relative), a component call
        (NAME.io.safetensors beside its NAME/ folder: 1e-4 relative L2) or a tokenizer case list (NAME.json beside its
        NAME/ folder with vocab.json and merges.txt: ids equal) or a pipeline run (pipelines/NAME.safetensors beside its
        pipeline folder: 1e-4 relative L2).
        """;

    static readonly OptionSpec[] Options =
    [
        new("folder", "component, tokenizer or pipeline folder to use instead of the one the file names", Value: "DIR"),
        new("unet", "ControlNet calls: the UNet2DConditionModel folder fed the residuals (default: a unet2d_condition folder beside the file)", Value: "DIR"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var files = args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToList();
        var o = OptionParser.Parse("verify-diffusers", args[files.Count..], Options);
        if (o.Flag("help"))
        {
            stdout.WriteLine(OptionParser.Help("verify-diffusers FILE...", Summary, Options));
            return 0;
        }
        if (files.Count == 0) throw new CliException("verify-diffusers: no FILE given; see 'diffusharp verify-diffusers --help'");
        foreach (var f in files)
            if (!File.Exists(f)) throw new CliException($"verify-diffusers: file not found: {f}");

        int failed = 0;
        foreach (var path in files)
            foreach (var (tensor, rel, maxAbs, tol) in Verify(path, o.String("folder"), o.String("unet")))
            {
                bool ok = rel <= tol;          // NaN fails
                if (!ok) failed++;
                stdout.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["file"] = path, ["tensor"] = tensor, ["rel_err"] = Finite(rel), ["max_abs"] = Finite(maxAbs), ["tol"] = tol, ["ok"] = ok,
                }));
            }
        if (failed > 0)
        {
            stderr.WriteLine($"verify-diffusers: {failed} tensor(s) beyond tolerance");
            return 1;
        }
        return 0;
    }

    /// <summary>JSON has no NaN or infinity: those print as strings.</summary>
    static object Finite(double v) => double.IsFinite(v) ? v : v.ToString(CultureInfo.InvariantCulture);

    static IEnumerable<(string Tensor, double RelErr, double MaxAbs, double Tol)> Verify(string path, string? folder, string? unet)
    {
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return VerifyTokenizer(path, folder);
        var file = SafeTensorsFile.Open(path);
        if (PipelineReplay.IsPipelineRun(file))
            return PipelineReplay.Run(path, folder).Select(r => (r.Output, r.RelErr, r.MaxAbs, PipelineReplay.Tolerance)).ToList();
        if (SchedulerReplay.IsSchedulerFixture(file))
            return SchedulerReplay.Run(file).Select(c => (c.Tensor, c.RelErr, c.MaxAbs, c.Tolerance)).ToList();
        if (file.Metadata.TryGetValue("model_class", out var cls))
        {
            if (cls == "ControlNetModel" && unet is null)
            {
                string beside = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "unet2d_condition");
                unet = Directory.Exists(beside) ? beside : throw new CliException($"verify-diffusers: {path} records the UNet fed with the ControlNet's residuals: pass --unet DIR");
            }
            return ComponentReplay.Run(path, folder, unet).Select(r => (r.Output, r.RelErr, r.MaxAbs, ComponentTolerance)).ToList();
        }
        throw new InvalidDataException($"{path}: not a recording this command knows (no \"scheduler_class\", \"model_class\" or \"pipeline_class\" in its metadata)");
    }

    static List<(string, double, double, double)> VerifyTokenizer(string path, string? folder)
    {
        folder ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, Path.GetFileNameWithoutExtension(path));
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{path}: tokenizer folder not found: {folder} (pass --folder DIR)");
        var tokenizer = new ClipTokenizer(Path.Combine(folder, "vocab.json"), Path.Combine(folder, "merges.txt"));
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})"); }
        using var owned = doc;
        if (!doc.RootElement.TryGetProperty("cases", out var cases) || cases.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{path}: no \"cases\" array (expected a tokenizer case list)");
        var results = new List<(string, double, double, double)>();
        int i = 0;
        foreach (var c in cases.EnumerateArray())
        {
            string prompt = c.GetProperty("prompt").GetString() ?? throw new InvalidDataException($"{path}: case {i} has no prompt");
            // "ids": the whole prompt between start and end (untruncated); "input_ids_pad_eos_77": cut and padded to 77
            int[] full = [tokenizer.BosId, .. tokenizer.EncodeRaw(prompt).Select(t => t.Id), tokenizer.EosId];
            results.Add(CompareIds($"cases.{i:00}.ids", Ints(c, "ids", path), full));
            if (c.TryGetProperty("input_ids_pad_eos_77", out _))
                results.Add(CompareIds($"cases.{i:00}.input_ids_pad_eos_77", Ints(c, "input_ids_pad_eos_77", path), tokenizer.Encode(prompt).InputIds));
            i++;
        }
        return results;
    }

    static int[] Ints(JsonElement c, string key, string path) =>
        c.TryGetProperty(key, out var a) && a.ValueKind == JsonValueKind.Array
            ? a.EnumerateArray().Select(e => e.GetInt32()).ToArray()
            : throw new InvalidDataException($"{path}: a case has no \"{key}\" array");

    /// <summary>rel_err: the fraction of positions that differ (a length difference counts every missing position).</summary>
    static (string, double, double, double) CompareIds(string name, int[] expected, int[] ours)
    {
        int n = Math.Max(expected.Length, ours.Length), differ = 0;
        for (int k = 0; k < n; k++)
            if (k >= expected.Length || k >= ours.Length || expected[k] != ours[k]) differ++;
        return (name, n == 0 ? 0 : differ / (double)n, differ, 0);
    }
}

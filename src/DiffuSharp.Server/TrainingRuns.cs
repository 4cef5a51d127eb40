// The training dashboard's data: the run folders under --runs (each with log.jsonl, as `diffusharp train` writes it),
// each run's log (loss, loss by quarter of t, lr, samples/s), its sample grids (samples/step_*.png), and steps per
// second and time left from the log and the run's configured steps (checkpoint/trainer.json). Read fresh on every
// request, so a run that `train` is writing in another process shows its new lines; a half-written last line is skipped.
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DiffuSharp.Server;

public sealed record RunSummary(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("last_step")] long LastStep,
    [property: JsonPropertyName("modified")] DateTime Modified);

public sealed record RunSample(
    [property: JsonPropertyName("step")] long Step,
    [property: JsonPropertyName("url")] string Url);

public sealed record RunDetail(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("log")] IReadOnlyList<JsonObject> Log,
    [property: JsonPropertyName("samples")] IReadOnlyList<RunSample> Samples,
    [property: JsonPropertyName("total_steps")] long? TotalSteps,
    [property: JsonPropertyName("batch_size")] int? BatchSize,
    [property: JsonPropertyName("steps_per_second")] double? StepsPerSecond,
    [property: JsonPropertyName("eta_seconds")] double? EtaSeconds);

public sealed partial class TrainingRuns(string root)
{
    public const string LogFile = "log.jsonl";
    const int MaxLogLines = 20000;

    [GeneratedRegex(@"^step_(\d+)\.png$")]
    private static partial Regex SampleName();

    public IReadOnlyList<RunSummary> List()
    {
        if (!Directory.Exists(root)) return [];
        return Directory.EnumerateDirectories(root).Where(d => File.Exists(Path.Combine(d, LogFile)))
            .Select(d => new RunSummary(Path.GetFileName(d), LastStep(Read(Path.Combine(d, LogFile))), File.GetLastWriteTimeUtc(Path.Combine(d, LogFile))))
            .OrderByDescending(r => r.Modified).ToList();
    }

    /// <summary>A run by its folder name, looked up among the listed runs (never a path from the request).</summary>
    public RunDetail? Get(string name)
    {
        string? dir = Folder(name);
        if (dir is null) return null;
        var log = Read(Path.Combine(dir, LogFile));
        var samples = Samples(dir).Select(s => new RunSample(s.Step, $"/api/runs/{Uri.EscapeDataString(name)}/samples/{s.File}")).ToList();
        var (total, batch) = Config(dir);
        // speed: samples/s of the last line over the batch size (steps/s), else from the log's step numbers alone is unknown
        double? sps = null;
        if (log.Count > 0 && batch is int b && b > 0 && log[^1]["samples_per_sec"] is JsonValue v && v.TryGetValue(out double perSec) && perSec > 0)
            sps = perSec / b;
        long last = LastStep(log);
        double? eta = sps is double r && total is long t && t > last ? (t - last) / r : total is long t2 && t2 <= last ? 0 : null;
        return new RunDetail(name, log, samples, total, batch, sps, eta);
    }

    public string? SamplePath(string name, string file)
    {
        string? dir = Folder(name);
        if (dir is null || !SampleName().IsMatch(file)) return null;
        string path = Path.Combine(dir, "samples", file);
        return File.Exists(path) ? path : null;
    }

    string? Folder(string name)
        => Directory.Exists(root) ? Directory.EnumerateDirectories(root).FirstOrDefault(d => Path.GetFileName(d) == name && File.Exists(Path.Combine(d, LogFile))) : null;

    IEnumerable<(long Step, string File)> Samples(string dir)
    {
        string folder = Path.Combine(dir, "samples");
        if (!Directory.Exists(folder)) return [];
        return Directory.EnumerateFiles(folder, "step_*.png").Select(Path.GetFileName)
            .Select(f => (M: SampleName().Match(f!), F: f!)).Where(x => x.M.Success && long.TryParse(x.M.Groups[1].Value, out _))
            .Select(x => (long.Parse(x.M.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), x.F)).OrderBy(x => x.Item1);
    }

    static (long? Total, int? Batch) Config(string dir)
    {
        try
        {
            string path = Path.Combine(dir, "checkpoint", "trainer.json");
            if (!File.Exists(path)) return (null, null);
            var config = JsonNode.Parse(File.ReadAllText(path))?["config"];
            return (config?["steps"]?.GetValue<long>(), config?["batch_size"]?.GetValue<int>());
        }
        catch (Exception e) when (e is IOException or JsonException or InvalidOperationException or FormatException) { return (null, null); }
    }

    static long LastStep(List<JsonObject> log) => log.Count > 0 && log[^1]["step"] is JsonValue s && s.TryGetValue(out long step) ? step : 0;

    static List<JsonObject> Read(string path)
    {
        var lines = new List<JsonObject>();
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                if (line.Length == 0) continue;
                try { if (JsonNode.Parse(line) is JsonObject o) lines.Add(o); }
                catch (JsonException) { }                                 // a line being written right now
                if (lines.Count > MaxLogLines) lines.RemoveRange(0, lines.Count / 2);
            }
        }
        catch (IOException) { }
        return lines;
    }

    public static void Map(WebApplication app, ServerState state)
    {
        var runs = app.MapGroup("/api/runs").WithTags("Training");
        runs.MapGet("/", () => state.Runs.List());
        runs.MapGet("/{name}", (string name) => state.Runs.Get(name) is { } run ? Results.Json(run) : HttpError.Result(404, $"no run '{Short(name)}' (a folder under the runs folder with {LogFile})"));
        runs.MapGet("/{name}/samples/{file}", (string name, string file) =>
            state.Runs.SamplePath(name, file) is { } path ? Results.File(path, "image/png") : HttpError.Result(404, $"no sample '{Short(file)}' in run '{Short(name)}'"));
    }

    static string Short(string s) => s.Length <= 80 ? s : s[..80] + "…";
}

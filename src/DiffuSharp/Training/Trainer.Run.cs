// The outer loop around Trainer.Step: JSONL loss logs averaged over log_interval (improved-diffusion's
// logger.logkv_mean + dumpkvs, with loss_q0..q3 by quarter of t), sample grids from the first EMA every
// sample_interval, checkpoints every save_interval and at the end or on cancellation, and the final model folder
// <out>/model/ (first EMA's weights, or the live ones without EMA) in the SPEC.md layout.
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.Diffusion;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.NN;

namespace DiffuSharp.Training;

public sealed partial class Trainer
{
    public const string LogFile = "log.jsonl";

    /// <summary>Trains until Config.TotalSteps or cancellation, then saves a checkpoint and the model folder.
    /// onStep sees every step, onLog every JSONL record written. Returns true when the step budget was reached.</summary>
    public bool Run(CancellationToken cancel = default, Action<StepStats>? onStep = null, Action<JsonObject>? onLog = null)
    {
        // Under MPI only rank 0 writes (the log, samples, checkpoints, the model folder); the others wait for it.
        string outFolder = Config.OutputFolder;
        if (IsRoot) Directory.CreateDirectory(outFolder);
        var meter = new LogMeter();
        if (IsRoot) TrimLog(Path.Combine(outFolder, LogFile), StepCount);
        using (var log = IsRoot ? new StreamWriter(Path.Combine(outFolder, LogFile), append: true, new UTF8Encoding(false)) : new StreamWriter(Stream.Null))
        {
            while (StepCount < Config.TotalSteps && !Stopping(cancel))
            {
                var s = Step(cancel.IsCancellationRequested);
                meter.Add(s);
                onStep?.Invoke(s);
                if (StepCount % Config.LogInterval == 0 || StepCount == Config.TotalSteps)
                {
                    var rec = meter.Flush(StepCount, Optimizer.Lr);
                    log.WriteLine(rec.ToJsonString());
                    log.Flush();
                    if (IsRoot) onLog?.Invoke(rec);
                }
                if (Config.SampleInterval > 0 && StepCount % Config.SampleInterval == 0)
                    AtRoot(() => SaveSampleGrid(Path.Combine(outFolder, "samples", $"step_{StepCount:D7}.png")));
                if (Config.SaveInterval > 0 && StepCount % Config.SaveInterval == 0 && StepCount < Config.TotalSteps)
                    SaveCheckpoint(outFolder);
            }
        }
        SaveCheckpoint(outFolder);
        AtRoot(() => SaveModelFolder(Path.Combine(outFolder, "model")));
        return StepCount >= Config.TotalSteps;
    }

    /// <summary>Checkpoint.Save on rank 0, once every rank is known to hold the same state.</summary>
    void SaveCheckpoint(string outFolder)
    {
        CheckRanksAgree();
        AtRoot(() => Checkpoint.Save(this, outFolder));
    }

    /// <summary>
    /// Keeps only the log records of steps ≤ <paramref name="step"/>: a run resumed from a checkpoint older than the
    /// last log lines replays those steps, and a fresh run (step 0) starts a fresh log, so the file always reads as
    /// one continuous run. A torn line (a crash mid-write) is dropped too. Rewritten atomically.
    /// </summary>
    internal static void TrimLog(string path, long step)
    {
        if (!File.Exists(path)) return;
        var lines = File.ReadAllLines(path);
        var keep = lines.Where(line =>
        {
            try { return JsonNode.Parse(line)?["step"]?.GetValue<long>() is long s && s <= step; }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { return false; }
        }).ToList();
        if (keep.Count == lines.Length) return;
        AtomicFile.Write(path, st => st.Write(new UTF8Encoding(false).GetBytes(string.Concat(keep.Select(l => l + "\n")))));
    }

    /// <summary>Writes the first EMA's weights (live weights when there is no EMA) as a SPEC.md model folder.</summary>
    public void SaveModelFolder(string folder)
    {
        var ema = Emas.Count > 0 ? Emas[0] : null;
        var meta = new Dictionary<string, string>
        {
            ["step"] = StepCount.ToString(CultureInfo.InvariantCulture),
            ["weights"] = ema is null ? "live" : $"ema {ema.Rate.ToString("R", CultureInfo.InvariantCulture)}",
        };
        ModelFolder.Save(folder, ModelConfig, ExportWeights(ema), meta);
    }

    /// <summary>A grid of 16 DDIM samples (≤ 50 steps, fixed noise from Seed) from the first EMA's weights.</summary>
    public void SaveSampleGrid(string path, int count = 16)
    {
        var sampler = new UNetModel(ModelConfig.ToUNetConfig(), new Rng(0));
        var weights = ExportWeights(Emas.Count > 0 ? Emas[0] : null).ToDictionary(w => w.Name, w => (w.Shape, w.Data));
        sampler.LoadStateDict(weights);
        sampler.Eval();
        int T = ModelConfig.DiffusionSteps;
        var diffusion = DiffusionFactory.Create(ModelConfig.ToDiffusionConfig() with { TimestepRespacing = Math.Min(50, T).ToString(CultureInfo.InvariantCulture) });
        int[]? classes = ModelConfig.ClassCount is int k ? Enumerable.Range(0, count).Select(i => i % k).ToArray() : null;
        int[] shape = [count, _c, _h, _w];
        var x = diffusion.DdimSampleLoop((xt, ts) => sampler.Forward(xt, ts, classes), shape, new Rng(Config.Seed ^ 0x5A4D5045UL));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Png.Write(path, ImageGrid.Make(x.ToArray(), count, _c, _h, _w));
    }

    /// <summary>Means over the steps since the last log line, quartiles weighted by how many samples fell in each.</summary>
    sealed class LogMeter
    {
        double _loss, _mse, _vb, _grad, _seconds;
        int _steps, _samples, _mseSteps, _vbSteps;
        readonly double[] _q = new double[4];
        readonly int[] _qn = new int[4];

        public void Add(StepStats s)
        {
            _steps++; _samples += s.BatchSize; _loss += s.Loss; _grad += s.GradNorm; _seconds += s.Seconds;
            if (s.Mse is double m) { _mse += m; _mseSteps++; }
            if (s.Vb is double v) { _vb += v; _vbSteps++; }
            for (int i = 0; i < 4; i++) { _q[i] += s.QuartileSums[i]; _qn[i] += s.QuartileCounts[i]; }
        }

        public JsonObject Flush(long step, double lr)
        {
            var o = new JsonObject { ["step"] = step, ["loss"] = Num(_loss / _steps) };
            if (_mseSteps > 0) o["mse"] = Num(_mse / _mseSteps);
            if (_vbSteps > 0) o["vb"] = Num(_vb / _vbSteps);
            for (int i = 0; i < 4; i++)
                if (_qn[i] > 0) o[$"loss_q{i}"] = Num(_q[i] / _qn[i]);
            o["lr"] = lr;
            o["grad_norm"] = Num(_grad / _steps);
            o["samples_per_sec"] = _seconds > 0 ? _samples / _seconds : 0;
            _loss = _mse = _vb = _grad = _seconds = 0;
            _steps = _samples = _mseSteps = _vbSteps = 0;
            Array.Clear(_q); Array.Clear(_qn);
            return o;
        }

        // JSON has no NaN or ∞: a diverged loss is logged as null rather than failing the run.
        static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    }
}

// The outer loop around Trainer.Step: JSONL loss logs averaged over log_interval (improved-diffusion's
// logger.logkv_mean + dumpkvs, with loss_q0..q3 by quarter of t), sample grids from the first EMA every
// sample_interval, checkpoints every save_interval (and every SaveEvery of wall time) and at the end or on
// cancellation, and the final model folder <out>/model/ (first EMA's weights, or the live ones without EMA) in the
// SPEC.md layout, swapped in whole like the checkpoint. A non-finite step ends the run without saving (the last
// checkpoint stays as it was), or is skipped and counted in the log ("skipped") under SkipNonFinite.
// Under MPI (Trainer.Distributed.cs) only rank 0 writes (log, samples, checkpoint, model/ and its manifest); a stop,
// a wall-time save and a non-finite step are agreed by every rank at the step's all-gather, so all ranks save, stop
// or skip together.
using System.Diagnostics;
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
    /// <summary>The JSON-lines training log's file name in the run folder: one record per logged step.</summary>
    public const string LogFile = "log.jsonl";

    /// <summary>Trains until Config.TotalSteps or cancellation, then saves a checkpoint and the model folder.
    /// onStep sees every step, onLog every JSONL record written. Returns true when the step budget was reached.</summary>
    public bool Run(CancellationToken cancel = default, Action<StepStats>? onStep = null, Action<JsonObject>? onLog = null)
    {
        // Under MPI only rank 0 writes (the log, samples, checkpoints, the model folder); the others wait for it.
        string outFolder = Config.OutputFolder;
        if (IsRoot)
        {
            Directory.CreateDirectory(outFolder);
            RunFolder.Tidy(outFolder);
        }
        long? savedStep = File.Exists(Path.Combine(outFolder, Checkpoint.FolderName, "trainer.json")) && StepCount > 0 ? StepCount : null;
        var sinceSave = Stopwatch.StartNew();
        var meter = new LogMeter();
        if (IsRoot) TrimLog(Path.Combine(outFolder, LogFile), StepCount);
        using (var log = IsRoot ? new StreamWriter(Path.Combine(outFolder, LogFile), append: true, new UTF8Encoding(false)) : new StreamWriter(Stream.Null))
        {
            while (StepCount < Config.TotalSteps && !Stopping(cancel))
            {
                StepStats s;
                long skippedBefore = SkippedSteps;
                // The wall-time save is asked for before the step and agreed on by every rank within it (Step shares
                // each rank's request), so all ranks take part in the same saves.
                try { s = Step(cancel.IsCancellationRequested, SaveEvery > TimeSpan.Zero && sinceSave.Elapsed >= SaveEvery); }
                catch (NonFiniteTrainingException e)
                {
                    throw new NonFiniteTrainingException(e.Step, e.Message + (savedStep is long k
                        ? $"; the last checkpoint (step {k}) in {Path.Combine(outFolder, Checkpoint.FolderName)} is intact"
                        : "; no checkpoint was saved yet"));
                }
                if (SkippedSteps > skippedBefore) meter.Skip(); else meter.Add(s);
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
                if (StepCount < Config.TotalSteps && (Config.SaveInterval > 0 && StepCount % Config.SaveInterval == 0 || _saveAgreed))
                {
                    SaveCheckpoint(outFolder);
                    savedStep = StepCount;
                    sinceSave.Restart();
                }
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
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or ArgumentException) { return false; }
        }).ToList();
        if (keep.Count == lines.Length) return;
        AtomicFile.Write(path, st => st.Write(new UTF8Encoding(false).GetBytes(string.Concat(keep.Select(l => l + "\n")))));
    }

    /// <summary>Writes the first EMA's weights (live weights when there is no EMA) as a SPEC.md model folder, with the
    /// data's class names (class_names.txt) when it has them, replacing the folder whole (see <see cref="RunFolder.Replace"/>); refuses non-finite weights.</summary>
    public void SaveModelFolder(string folder)
    {
        var ema = Emas.Count > 0 ? Emas[0] : null;
        var meta = new Dictionary<string, string>
        {
            ["step"] = StepCount.ToString(CultureInfo.InvariantCulture),
            ["weights"] = ema is null ? "live" : $"ema {ema.Rate.ToString("R", CultureInfo.InvariantCulture)}",
        };
        if (ema is null) CheckFinite(Flat.Values, "weights"); else CheckFinite(ema.Shadow[0].ToArray(), "EMA");
        RunFolder.Replace(folder, tmp =>
        {
            ModelFolder.Save(tmp, ModelConfig, ExportWeights(ema), meta);
            if (ClassNames is not null) Models.ClassNames.Save(tmp, ClassNames);
        });
    }

    /// <summary>Also save a checkpoint whenever this much wall time passed since the last one (zero: off), so a hard
    /// kill loses minutes of work whatever save_interval is.</summary>
    public TimeSpan SaveEvery { get; set; }

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
        Image8 grid;
        try { grid = ImageGrid.Make(x.ToArray(), count, _c, _h, _w); }
        catch (ArgumentException e) { throw new NonFiniteTrainingException(StepCount, $"step {StepCount}: the sample grid {path} of the EMA weights is not finite ({e.Message})"); }
        Png.Write(path, grid);
    }

    /// <summary>Means over the steps since the last log line, quartiles weighted by how many samples fell in each.</summary>
    sealed class LogMeter
    {
        double _loss, _mse, _vb, _grad, _seconds;
        int _steps, _samples, _mseSteps, _vbSteps, _skipped;
        readonly double[] _q = new double[4];
        readonly int[] _qn = new int[4];

        public void Add(StepStats s)
        {
            _steps++; _samples += s.BatchSize; _loss += s.Loss; _grad += s.GradNorm; _seconds += s.Seconds;
            if (s.Mse is double m) { _mse += m; _mseSteps++; }
            if (s.Vb is double v) { _vb += v; _vbSteps++; }
            for (int i = 0; i < 4; i++) { _q[i] += s.QuartileSums[i]; _qn[i] += s.QuartileCounts[i]; }
        }

        /// <summary>A step skipped for a non-finite loss or gradient: counted, not averaged.</summary>
        public void Skip() => _skipped++;

        public JsonObject Flush(long step, double lr)
        {
            var o = new JsonObject { ["step"] = step, ["loss"] = Num(_loss / _steps) };
            if (_skipped > 0) o["skipped"] = _skipped;
            if (_mseSteps > 0) o["mse"] = Num(_mse / _mseSteps);
            if (_vbSteps > 0) o["vb"] = Num(_vb / _vbSteps);
            for (int i = 0; i < 4; i++)
                if (_qn[i] > 0) o[$"loss_q{i}"] = Num(_q[i] / _qn[i]);
            o["lr"] = lr;
            o["grad_norm"] = Num(_grad / _steps);
            o["samples_per_sec"] = _seconds > 0 ? _samples / _seconds : 0;
            _loss = _mse = _vb = _grad = _seconds = 0;
            _steps = _samples = _mseSteps = _vbSteps = _skipped = 0;
            Array.Clear(_q); Array.Clear(_qn);
            return o;
        }

        // JSON has no NaN or ∞: a diverged loss is logged as null rather than failing the run.
        static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    }
}

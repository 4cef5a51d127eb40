// The training loop's settings, as improved-diffusion's train flags (scripts/image_train.py, train_util.TrainLoop)
// plus what DiffuSharp adds: a linear lr warm-up, global-norm gradient clipping, a step budget and intervals.
// Saved as JSON in every checkpoint's trainer.json, so a checkpoint says how it was trained.
using System.Globalization;
using System.Text.Json.Nodes;

namespace DiffuSharp.Training;

/// <summary>The training loop's settings; each is the improved-diffusion flag of the same name (BatchSize is
/// <c>batch_size</c>, EmaRate <c>ema_rate</c>, ...), plus <see cref="WarmupSteps"/>, <see cref="GradClip"/>, the step
/// budget <see cref="TotalSteps"/>, and <see cref="OutputFolder"/>, where the log, checkpoints and model folder go.</summary>
public sealed record TrainConfig(
    int BatchSize = 128,
    int Microbatch = -1,                     // −1: the whole batch in one forward/backward (improved-diffusion's default)
    double Lr = 1e-4,
    double WeightDecay = 0.0,
    int WarmupSteps = 0,                     // lr rises linearly from lr/warmup to lr over these steps
    int LrAnnealSteps = 0,                   // 0 = constant; else lr·(1 − step/anneal), improved-diffusion's _anneal_lr
    double GradClip = 0.0,                   // max global L2 norm; 0 = no clipping
    string EmaRate = "0.9999",               // comma-separated, one EMA per rate (improved-diffusion's --ema_rate)
    string ScheduleSampler = "uniform",      // "uniform" | "loss-second-moment"
    long TotalSteps = 10_000,
    ulong Seed = 0,
    int LogInterval = 10,
    int SampleInterval = 0,                  // 0 = no sample grids during training
    int SaveInterval = 10_000,               // 0 = save only at the end (and on Ctrl-C)
    string OutputFolder = "runs/train",
    string DataSource = "")                  // how the data was named on the command line, so --resume reloads it
{
    /// <summary>The EMA rates, parsed from <see cref="EmaRate"/>.</summary>
    public double[] EmaRates()
    {
        if (string.IsNullOrWhiteSpace(EmaRate)) return [];
        var parts = EmaRate.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var rates = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out rates[i]) || !(rates[i] >= 0 && rates[i] <= 1))
                throw new ArgumentException($"ema_rate: expected numbers in [0, 1] separated by commas, got \"{EmaRate}\"");
        if (rates.Distinct().Count() != rates.Length) throw new ArgumentException($"ema_rate: rates must be distinct, got \"{EmaRate}\"");
        return rates;
    }

    /// <summary>The effective microbatch size (the whole batch when off).</summary>
    public int MicrobatchSize => Microbatch > 0 ? Microbatch : BatchSize;

    /// <summary>Checks every field; throws ArgumentException naming the bad one.</summary>
    public void Validate()
    {
        if (BatchSize < 1) throw new ArgumentException($"batch_size must be positive, got {BatchSize}");
        if (Microbatch == 0 || Microbatch < -1) throw new ArgumentException($"microbatch must be positive or -1 (off), got {Microbatch}");
        if (Microbatch > BatchSize) throw new ArgumentException($"microbatch {Microbatch} is larger than batch_size {BatchSize}");
        if (!(Lr >= 0) || double.IsInfinity(Lr)) throw new ArgumentException($"lr must be a non-negative number, got {Lr}");
        if (!(WeightDecay >= 0)) throw new ArgumentException($"weight_decay must be non-negative, got {WeightDecay}");
        if (WarmupSteps < 0) throw new ArgumentException($"warmup must be non-negative, got {WarmupSteps}");
        if (LrAnnealSteps < 0) throw new ArgumentException($"lr_anneal_steps must be non-negative, got {LrAnnealSteps}");
        if (!(GradClip >= 0)) throw new ArgumentException($"grad_clip must be non-negative (0 = off), got {GradClip}");
        if (ScheduleSampler is not ("uniform" or "loss-second-moment"))
            throw new ArgumentException($"schedule_sampler must be \"uniform\" or \"loss-second-moment\", got \"{ScheduleSampler}\"");
        if (TotalSteps < 1) throw new ArgumentException($"steps must be positive, got {TotalSteps}");
        if (LogInterval < 1) throw new ArgumentException($"log_interval must be positive, got {LogInterval}");
        if (SampleInterval < 0 || SaveInterval < 0) throw new ArgumentException($"sample_interval and save_interval must be non-negative (0 = off), got {SampleInterval} and {SaveInterval}");
        EmaRates();
    }

    /// <summary>Learning rate for the step about to be taken (0-based): linear warm-up, then improved-diffusion's linear anneal.</summary>
    public double LrAt(long step)
    {
        double lr = Lr;
        if (WarmupSteps > 0 && step < WarmupSteps) lr *= (step + 1) / (double)WarmupSteps;
        if (LrAnnealSteps > 0) lr *= Math.Max(0.0, 1.0 - step / (double)LrAnnealSteps);
        return lr;
    }

    /// <summary>The settings as trainer.json stores them (the seed as a string, so 64 bits survive JSON).</summary>
    public JsonObject ToJson() => new()
    {
        ["batch_size"] = BatchSize, ["microbatch"] = Microbatch, ["lr"] = Lr, ["weight_decay"] = WeightDecay,
        ["warmup"] = WarmupSteps, ["lr_anneal_steps"] = LrAnnealSteps, ["grad_clip"] = GradClip, ["ema_rate"] = EmaRate,
        ["schedule_sampler"] = ScheduleSampler, ["steps"] = TotalSteps, ["seed"] = Seed.ToString(CultureInfo.InvariantCulture),
        ["log_interval"] = LogInterval, ["sample_interval"] = SampleInterval, ["save_interval"] = SaveInterval,
        ["out"] = OutputFolder, ["data"] = DataSource,
    };

    /// <summary>The settings from trainer.json, missing keys taking the defaults; throws
    /// <see cref="InvalidDataException"/> starting with <paramref name="source"/> for a value of the wrong type or out of
    /// range.</summary>
    public static TrainConfig FromJson(JsonObject o, string source)
    {
        try
        {
            var d = new TrainConfig();
            return new TrainConfig(
                BatchSize: o["batch_size"]?.GetValue<int>() ?? d.BatchSize,
                Microbatch: o["microbatch"]?.GetValue<int>() ?? d.Microbatch,
                Lr: o["lr"]?.GetValue<double>() ?? d.Lr,
                WeightDecay: o["weight_decay"]?.GetValue<double>() ?? d.WeightDecay,
                WarmupSteps: o["warmup"]?.GetValue<int>() ?? d.WarmupSteps,
                LrAnnealSteps: o["lr_anneal_steps"]?.GetValue<int>() ?? d.LrAnnealSteps,
                GradClip: o["grad_clip"]?.GetValue<double>() ?? d.GradClip,
                EmaRate: o["ema_rate"]?.GetValue<string>() ?? d.EmaRate,
                ScheduleSampler: o["schedule_sampler"]?.GetValue<string>() ?? d.ScheduleSampler,
                TotalSteps: o["steps"]?.GetValue<long>() ?? d.TotalSteps,
                Seed: o["seed"] is { } s ? ulong.Parse(s.GetValue<string>(), CultureInfo.InvariantCulture) : d.Seed,
                LogInterval: o["log_interval"]?.GetValue<int>() ?? d.LogInterval,
                SampleInterval: o["sample_interval"]?.GetValue<int>() ?? d.SampleInterval,
                SaveInterval: o["save_interval"]?.GetValue<int>() ?? d.SaveInterval,
                OutputFolder: o["out"]?.GetValue<string>() ?? d.OutputFolder,
                DataSource: o["data"]?.GetValue<string>() ?? d.DataSource);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
        {
            throw new InvalidDataException($"{source}: bad training config ({e.Message})");
        }
    }
}

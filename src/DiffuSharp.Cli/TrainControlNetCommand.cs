// diffusharp train-controlnet: a ControlNet for a trained text-to-image pipeline (train-latent's <out>/pipeline, or
// any diffusers StableDiffusionPipeline folder whose VAE takes Fashion-MNIST padded evenly), conditioned on the Canny
// edges or the filled silhouette of each training image. The UNet and text encoder stay frozen; the ControlNet
// starts as a copy of the UNet's encoder with zero convolutions (ControlNetModel.FromUNet). The run folder holds
//   pipeline/             a copy of --pipeline: the frozen models a resumed run needs (and txt2img's --model)
//   latents.safetensors   the VAE posterior of every training image, computed once (LatentCache)
//   checkpoint/           ControlNetCheckpoint: the ControlNet, EMA, optimizer, RNGs; --resume continues bit-exactly
//   controlnet/           a diffusers ControlNetModel folder from the EMA weights, rewritten at each save
//                         (txt2img --model RUN/pipeline --controlnet RUN/controlnet --control-image FILE)
//   samples/step_N.png    rows: test images, their control images, the outputs for "a photo of a {class}" with them
//   log.jsonl             one line per --log-interval steps
// The control images are computed again on --resume (they depend only on the images and the condition).
using System.Globalization;
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class TrainControlNetCommand
{
    const string Name = "train-controlnet";
    const string LatentsFile = "latents.safetensors", PipelineFolderName = "pipeline", NetFolderName = "controlnet";

    static readonly OptionSpec[] Options =
    [
        new("pipeline", "the text-to-image pipeline to control (a diffusers StableDiffusionPipeline folder, e.g. train-latent's <out>/pipeline)", Value: "DIR"),
        new("condition", "edges (Canny, as `diffusharp edges`) | silhouette (the filled garment mask, as `edges --silhouette`)", Value: "C"),
        new("data", "Fashion-MNIST folder (IDX .gz files)", FashionMnist.DefaultFolder, Value: "DIR"),
        new("out", "run folder: pipeline/, latents, checkpoint/, controlnet/, samples/, log.jsonl", Value: "DIR"),
        new("resume", "continue the run in --out from its checkpoint", IsFlag: true),
        new("overwrite", "replace a run already in --out", IsFlag: true),
        new("steps", "total optimisation steps", "10000", Value: "N"),
        new("batch_size", "images per step", "64", Value: "B"),
        new("lr", "AdamW learning rate", "1e-4", Value: "LR"),
        new("weight_decay", "AdamW weight decay", "0", Value: "WD"),
        new("warmup", "linear lr warm-up steps", "500", Value: "N"),
        new("lr_anneal_steps", "lr decays linearly to 0 over this many steps (0 = constant)", "0", Value: "N"),
        new("grad_clip", "max global gradient norm (0 = off)", "1", Value: "G"),
        new("ema_rate", "EMA rate of the weights controlnet/ is written from (capped by (1 + step)/(10 + step))", "0.999", Value: "R"),
        new("snr_gamma", "min-SNR-γ loss weighting (0 = off)", "5", Value: "G"),
        new("noise_offset", "offset noise (0 = off)", "0", Value: "O"),
        new("conditioning_embedding_out_channels", "widths of the control image embedding; one more entry than the VAE halves (default 16, 32, 64, … to fit)", Value: "LIST"),
        new("seed", "seed of the initialisation, data order, captions and noise", "0", Value: "S"),
        new("max_train", "use only the first N training images (0 = all)", "0", Value: "N"),
        new("log_interval", "steps per log line", "50", Value: "N"),
        new("save_interval", "steps per checkpoint and controlnet/ (0 = only at the end)", "1000", Value: "N"),
        new("save_minutes", "also checkpoint after this many minutes (0 = off)", "10", Value: "M"),
        new("sample_interval", "steps per sample grid (0 = off)", "1000", Value: "N"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Trains a ControlNet (edges or silhouette) for a text-to-image pipeline whose UNet and text encoder stay frozen; writes a diffusers ControlNetModel folder.", Options)); return 0; }
        string outFolder = o.Required("out");
        bool resume = o.Flag("resume");
        if (resume && o.Flag("overwrite")) throw new CliException($"{Name}: --resume and --overwrite exclude each other");
        if (!resume) ParseCondition(o.Required("condition"));              // before any data is read
        var train = FashionMnist.Load(o.Required("data"), train: true);
        int maxTrain = o.Int("max_train", 0);
        if (maxTrain > 0 && maxTrain < train.Count)
            train = new ImageDataset(train.Images.AsSpan(0, maxTrain * train.ImageLength).ToArray(), maxTrain, 1, train.Height, train.Width,
                train.Labels!.AsSpan(0, maxTrain).ToArray(), train.NumClasses);

        ControlNetTrainer trainer;
        StableDiffusionPipeline pipe;
        if (resume)
        {
            var fixedOnResume = Options.Select(s => s.Name).Except(["out", "resume", "steps", "data", "max_train", "help"]);
            if (fixedOnResume.FirstOrDefault(o.Given) is { } given)
                throw new CliException($"{Name}: --{OptionParser.Display(given)} cannot change on --resume (the checkpoint's value is used); only --steps and --data may be given");
            string ckpt = Checkpoint.Locate(outFolder);
            var (saved, _, condition) = ControlNetCheckpoint.ReadSettings(ckpt);
            long steps = o.Given("steps") ? o.Long("steps") : saved.TotalSteps;
            pipe = LoadPipeline(Path.Combine(outFolder, PipelineFolderName));
            var data = Captioned(LatentCache.Load(Path.Combine(outFolder, LatentsFile)), train, outFolder);
            var control = ControlImages.Compute(train, Pad(pipe, train, outFolder), condition);
            trainer = ControlNetCheckpoint.Load(ckpt, pipe.UNet, pipe.TextEncoder, pipe.Tokenizer, data, control, c => c with { TotalSteps = steps });
            stdout.WriteLine($"resumed {outFolder} at step {trainer.StepCount}");
        }
        else (trainer, pipe) = Start(o, outFolder, train, stdout);
        return Loop(trainer, pipe, outFolder, o.Double("save_minutes", 0), trainer.Config.SampleInterval > 0 ? ControlNetSampleGrid.Images(o.Required("data"), train) : train, stdout);
    }

    static ControlCondition ParseCondition(string name)
    {
        try { return ControlImages.Parse(name); }
        catch (ArgumentException) { throw new CliException($"{Name}: --condition must be edges or silhouette, got '{name}'"); }
    }

    static (ControlNetTrainer, StableDiffusionPipeline) Start(ParsedOptions o, string outFolder, ImageDataset train, TextWriter stdout)
    {
        var condition = ParseCondition(o.Required("condition"));
        string source = o.Required("pipeline");
        var index = CheckPipeline(source);
        if (RunFolder.HoldsRun(outFolder) || File.Exists(Path.Combine(outFolder, LatentsFile)))
        {
            if (!o.Flag("overwrite")) throw new CliException($"{Name}: {outFolder} already holds a run; continue it with --resume or replace it with --overwrite");
            RunFolder.Clear(outFolder);
            foreach (var d in new[] { PipelineFolderName, NetFolderName }) RunFolder.TryDelete(Path.Combine(outFolder, d));
            File.Delete(Path.Combine(outFolder, LatentsFile));
        }
        var config = new TrainConfig(BatchSize: o.Int("batch_size", 1), Lr: o.Double("lr", 0), WeightDecay: o.Double("weight_decay", 0),
            WarmupSteps: o.Int("warmup", 0), LrAnnealSteps: o.Int("lr_anneal_steps", 0), GradClip: o.Double("grad_clip", 0), EmaRate: o.Required("ema_rate"),
            TotalSteps: o.Long("steps"), Seed: (ulong)o.Long("seed"), LogInterval: o.Int("log_interval", 1), SampleInterval: o.Int("sample_interval", 0),
            SaveInterval: o.Int("save_interval", 0), OutputFolder: outFolder, DataSource: o.Required("data"));
        var objective = new LatentObjective(o.Double("snr_gamma", 0), o.Double("noise_offset", 0));
        try { config.Validate(); objective.Validate(); } catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }

        Directory.CreateDirectory(outFolder);
        string copy = Path.Combine(outFolder, PipelineFolderName);
        RunFolder.Replace(copy, tmp => CopyPipeline(index, tmp));
        var pipe = LoadPipeline(copy);
        int pad = Pad(pipe, train, source);
        int levels = pipe.Vae.Config.BlockOutChannels.Length;
        var embOut = o.Given("conditioning_embedding_out_channels")
            ? o.IntList("conditioning_embedding_out_channels")
            : Enumerable.Range(0, levels).Select(i => 16 << i).ToArray();
        if (embOut.Length != levels || embOut.Any(c => c < 1))
            throw new CliException($"{Name}: --conditioning-embedding-out-channels needs {levels} positive entries (the VAE halves images {levels - 1} times), got {embOut.Length}");
        stdout.WriteLine($"encoding {train.Count} training images with {Path.Combine(source, "vae")} ...");
        var cache = LatentCache.Encode(pipe.Vae, train, pad);
        cache.Save(Path.Combine(outFolder, LatentsFile));
        var control = ControlImages.Compute(train, pad, condition);
        ControlNetTrainer trainer;
        try
        {
            trainer = new ControlNetTrainer(pipe.UNet, pipe.TextEncoder, pipe.Scheduler.Config, config, objective, pipe.Tokenizer,
                Captioned(cache, train, outFolder), control, embOut);
        }
        catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }
        double cover = control.Masks.Average();
        stdout.WriteLine($"ControlNetModel ({trainer.Net.ParameterCount():N0} parameters) from {source}'s UNet ({pipe.UNet.ParameterCount():N0}, frozen) on " +
            $"{string.Join("×", cache.LatentShape)} latents; {ControlImages.Name(condition)} of {train.Count} images, {100 * cover:F1}% of the pixels set; " +
            $"{pipe.Scheduler.Config.PredictionType} objective");
        return (trainer, pipe);
    }

    /// <summary>The pipeline folder's index, with a UNet, text encoder, VAE, tokenizer and scheduler checked.</summary>
    static ModelIndex CheckPipeline(string folder)
    {
        if (!Directory.Exists(folder)) throw new CliException($"{Name}: --pipeline folder not found: {folder}");
        var index = ModelIndex.Load(folder);
        string modelIndex = Path.Combine(folder, "model_index.json");
        if (!index.Components.TryGetValue("unet", out var unet))
            throw new CliException($"{Name}: {folder} has no UNet: {modelIndex} lists no \"unet\" component (give a text-to-image pipeline folder, e.g. train-latent's <out>/pipeline)");
        if (!Directory.Exists(unet.Folder))
            throw new CliException($"{Name}: {folder} has no UNet: the folder {unet.Folder} that {modelIndex} names is missing");
        if (unet.ClassName != "UNet2DConditionModel")
            throw new CliException($"{Name}: {folder}'s unet is a {unet.ClassName}; a ControlNet needs a UNet2DConditionModel");
        foreach (var part in new[] { "unet", "text_encoder", "vae", "tokenizer", "scheduler" })
        {
            try { index.Require(part); }
            catch (Exception e) when (e is InvalidDataException or IOException) { throw new CliException($"{Name}: {e.Message}"); }
        }
        return index;
    }

    /// <summary>model_index.json and every component folder it names, file for file.</summary>
    static void CopyPipeline(ModelIndex index, string dest)
    {
        File.Copy(Path.Combine(index.Root, "model_index.json"), Path.Combine(dest, "model_index.json"));
        foreach (var c in index.Components.Values)
        {
            if (!Directory.Exists(c.Folder)) continue;
            foreach (var file in Directory.EnumerateFiles(c.Folder, "*", SearchOption.AllDirectories))
            {
                string target = Path.Combine(dest, c.Name, Path.GetRelativePath(c.Folder, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
        }
    }

    static StableDiffusionPipeline LoadPipeline(string folder)
    {
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(folder));
        if (pipe.Vae.Config.InChannels != 1)
            throw new CliException($"{Name}: {folder}'s VAE takes {pipe.Vae.Config.InChannels}-channel images; Fashion-MNIST's are gray (in_channels 1)");
        return pipe;
    }

    /// <summary>The padding on each side that takes the training images to the VAE's sample_size.</summary>
    static int Pad(StableDiffusionPipeline pipe, ImageDataset train, string source)
    {
        var c = pipe.Vae.Config;
        int pad = (c.SampleSize - train.Height) / 2;
        if (pad < 0 || train.Height + 2 * pad != c.SampleSize || train.Width != train.Height)
            throw new CliException($"{Name}: {source}'s VAE takes {c.SampleSize}×{c.SampleSize} images (vae/config.json sample_size); Fashion-MNIST's {train.Height}×{train.Width} cannot be padded evenly to it");
        return pad;
    }

    static CaptionedLatents Captioned(LatentCache cache, ImageDataset train, string outFolder)
    {
        if (cache.Count != train.Count)
            throw new CliException($"{Name}: {Path.Combine(outFolder, LatentsFile)} holds {cache.Count} latents, the data has {train.Count} images: resume with the same --data and --max-train");
        return new CaptionedLatents(cache, train.Labels!, FashionCaptions.Measure(train));
    }

    static int Loop(ControlNetTrainer trainer, StableDiffusionPipeline pipe, string outFolder, double saveMinutes, ImageDataset gridImages, TextWriter stdout)
        => LatentTrainingLoop.Run(new LatentRun(trainer.Config, () => trainer.StepCount, trainer.Step, () => trainer.Epoch,
            () => Save(trainer, outFolder), () => ControlNetSampleGrid.Write(trainer, pipe, outFolder, gridImages), Path.Combine(outFolder, NetFolderName)),
            outFolder, saveMinutes, stdout);

    /// <summary>The checkpoint, then controlnet/ from the EMA weights.</summary>
    static void Save(ControlNetTrainer trainer, string outFolder)
    {
        ControlNetCheckpoint.Save(trainer, outFolder);
        var meta = new Dictionary<string, string>
        {
            ["step"] = trainer.StepCount.ToString(CultureInfo.InvariantCulture), ["condition"] = ControlImages.Name(trainer.Condition),
        };
        RunFolder.Replace(Path.Combine(outFolder, NetFolderName), tmp => ControlNetFolder.Save(tmp, trainer.Net.Config, trainer.ExportWeights(trainer.Ema), meta));
    }
}

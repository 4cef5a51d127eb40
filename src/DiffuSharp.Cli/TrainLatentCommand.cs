// diffusharp train-latent: text-to-image latent diffusion on Fashion-MNIST. A UNet2DConditionModel learns to denoise
// the latents of a trained VAE (--vae, a diffusers AutoencoderKL folder such as train-vae's <out>/vae) while
// cross-attending to a CLIP text encoder trained with it; each image's caption is drawn from its label and measured
// attributes (docs/captions.md; --bare-captions of them name the garment only). --init-from fine-tunes the UNet and
// text encoder of a pipeline folder instead of starting from random weights. The run folder holds
//   latents.safetensors   the VAE posterior of every training image, computed once (LatentCache)
//   vae/, tokenizer/      copies of the VAE and the tokenizer the run uses (a resumed run needs nothing else)
//   captions.txt          with --captions, the run's copy of the fixed captions
//   checkpoint/           LatentCheckpoint: both models, EMA, optimizer, RNGs; --resume continues bit-exactly
//   pipeline/             a diffusers StableDiffusionPipeline folder from the EMA weights, rewritten at each save
//   samples/step_N.png    a grid of the fixed prompts (one row per class), DPM++ 2M, guidance 3
//   log.jsonl             one line per --log-interval steps
using System.Globalization;
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class TrainLatentCommand
{
    const string Name = "train-latent";
    const string LatentsFile = "latents.safetensors", PipelineFolderName = "pipeline", CaptionsFile = "captions.txt";

    static readonly OptionSpec[] Options =
    [
        new("vae", "the VAE whose latents the UNet learns (a diffusers AutoencoderKL folder, e.g. train-vae's <out>/vae)", Value: "DIR"),
        new("data", "Fashion-MNIST folder (IDX .gz files)", FashionMnist.DefaultFolder, Value: "DIR"),
        new("out", "run folder: latents, checkpoint/, pipeline/, samples/, log.jsonl", Value: "DIR"),
        new("resume", "continue the run in --out from its checkpoint", IsFlag: true),
        new("overwrite", "replace a run already in --out", IsFlag: true),
        new("steps", "total optimisation steps", "20000", Value: "N"),
        new("batch_size", "images per step", "64", Value: "B"),
        new("lr", "AdamW learning rate", "3e-4", Value: "LR"),
        new("weight_decay", "AdamW weight decay (0 leaves the unused rows of the token embedding alone)", "0", Value: "WD"),
        new("warmup", "linear lr warm-up steps", "500", Value: "N"),
        new("lr_anneal_steps", "lr decays linearly to 0 over this many steps (0 = constant)", "0", Value: "N"),
        new("grad_clip", "max global gradient norm (0 = off)", "1", Value: "G"),
        new("ema_rate", "EMA rate of the weights pipeline/ is written from (capped by (1 + step)/(10 + step))", "0.9995", Value: "R"),
        new("prediction_type", "epsilon | v_prediction | sample", "epsilon", Value: "P"),
        new("beta_schedule", "the noise schedule: scaled_linear (Stable Diffusion's) | linear | squaredcos_cap_v2", "scaled_linear", Value: "S"),
        new("snr_gamma", "min-SNR-γ loss weighting (0 = off)", "5", Value: "G"),
        new("noise_offset", "offset noise (0 = off)", "0", Value: "O"),
        new("block_out_channels", "UNet channels per level", "64,128,128", Value: "LIST"),
        new("down_block_types", "UNet down blocks (CrossAttnDownBlock2D | DownBlock2D); the up blocks mirror them", "CrossAttnDownBlock2D,CrossAttnDownBlock2D,DownBlock2D", Value: "LIST"),
        new("layers_per_block", "resnets per UNet level", "2", Value: "N"),
        new("attention_heads", "attention heads per level, or one for all (diffusers' attention_head_dim)", "4", Value: "LIST"),
        new("text_layers", "text encoder layers", "4", Value: "N"),
        new("text_width", "text encoder width (the UNet's cross_attention_dim)", "128", Value: "D"),
        new("text_heads", "text encoder attention heads", "4", Value: "N"),
        new("max_length", "tokens per caption, padded (the text encoder's positions)", "32", Value: "L"),
        new("captions", "a text file with one caption per training image (as `captions` writes; an empty line is an empty caption) instead of a fresh draw each epoch", Value: "FILE"),
        new("bare_captions", "share of non-empty captions that name the garment only, whatever its attributes (docs/captions.md), so that a prompt without attribute words asks for any garment of its class", "0.5", Value: "P"),
        new("init_from", "fine-tune: start from the unet/ and text_encoder/ of this pipeline folder (their configs replace the model options)", Value: "DIR"),
        new("tokenizer", "CLIP tokenizer folder (vocab.json, merges.txt)", "models/clip-tokenizer", Value: "DIR"),
        new("seed", "seed of the initialisation, data order, captions and noise", "0", Value: "S"),
        new("max_train", "use only the first N training images (0 = all)", "0", Value: "N"),
        new("log_interval", "steps per log line", "50", Value: "N"),
        new("save_interval", "steps per checkpoint and pipeline/ (0 = only at the end)", "1000", Value: "N"),
        new("save_minutes", "also checkpoint after this many minutes (0 = off)", "10", Value: "M"),
        new("sample_interval", "steps per sample grid (0 = off)", "2000", Value: "N"),
        new("help", "show this help", IsFlag: true),
    ];

    /// <summary>The grid's prompts: one per class, as the text-to-image benchmark asks them.</summary>
    public static IReadOnlyList<string> GridPrompts { get; } = FashionCaptions.ClassNames.Select(c => "a photo of " + FashionCaptions.WithArticle(c)).ToList();

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Trains a text-conditioned UNet2DConditionModel and a CLIP text encoder in a VAE's latent space; writes a diffusers pipeline folder.", Options)); return 0; }
        string outFolder = o.Required("out");
        bool resume = o.Flag("resume");
        if (resume && o.Flag("overwrite")) throw new CliException($"{Name}: --resume and --overwrite exclude each other");
        var train = FashionMnist.Load(o.Required("data"), train: true);
        int maxTrain = o.Int("max_train", 0);
        if (maxTrain > 0 && maxTrain < train.Count)
            train = new ImageDataset(train.Images.AsSpan(0, maxTrain * train.ImageLength).ToArray(), maxTrain, 1, train.Height, train.Width,
                train.Labels!.AsSpan(0, maxTrain).ToArray(), train.NumClasses);

        LatentTrainer trainer;
        if (resume)
        {
            var fixedOnResume = Options.Select(s => s.Name).Except(["out", "resume", "steps", "data", "max_train", "help"]);
            if (fixedOnResume.FirstOrDefault(o.Given) is { } given)
                throw new CliException($"{Name}: --{OptionParser.Display(given)} cannot change on --resume (the checkpoint's value is used); only --steps and --data may be given");
            string ckpt = Checkpoint.Locate(outFolder);
            var (saved, _) = LatentCheckpoint.ReadSettings(ckpt);
            long steps = o.Given("steps") ? o.Long("steps") : saved.TotalSteps;
            var tokenizer = ClipTokenizer.FromFolder(Path.Combine(outFolder, "tokenizer"));
            var data = Captioned(LatentCache.Load(Path.Combine(outFolder, LatentsFile)), train, outFolder, ReadCaptionCopy(outFolder, train.Count));
            trainer = LatentCheckpoint.Load(ckpt, tokenizer, data, c => c with { TotalSteps = steps });
            stdout.WriteLine($"resumed {outFolder} at step {trainer.StepCount}");
        }
        else trainer = Start(o, outFolder, train, stdout);
        return Loop(trainer, outFolder, o.Double("save_minutes", 0), stdout);
    }

    static LatentTrainer Start(ParsedOptions o, string outFolder, ImageDataset train, TextWriter stdout)
    {
        var init = InitialModels(o);                                         // before --overwrite clears anything
        if (RunFolder.HoldsRun(outFolder) || File.Exists(Path.Combine(outFolder, LatentsFile)))
        {
            if (!o.Flag("overwrite")) throw new CliException($"{Name}: {outFolder} already holds a run; continue it with --resume or replace it with --overwrite");
            RunFolder.Clear(outFolder);
            foreach (var d in new[] { PipelineFolderName, "vae", "tokenizer" }) RunFolder.TryDelete(Path.Combine(outFolder, d));
            File.Delete(Path.Combine(outFolder, LatentsFile));
        }
        string vaeFolder = o.Required("vae");
        var vae = ComponentLoader.LoadAutoencoderKL(vaeFolder);
        vae.Eval();
        int pad = (vae.Config.SampleSize - train.Height) / 2;
        if (vae.Config.InChannels != 1 || pad < 0 || train.Height + 2 * pad != vae.Config.SampleSize)
            throw new CliException($"{Name}: {vaeFolder} takes {vae.Config.InChannels}×{vae.Config.SampleSize}×{vae.Config.SampleSize} images (config.json in_channels, sample_size); Fashion-MNIST's are 1×{train.Height}×{train.Width} (padded evenly on each side)");

        int maxLength = o.Int("max_length", 2, 77);
        string tokenizerDir = ToolPath(o.Required("tokenizer"));
        var tokenizer = new ClipTokenizer(Path.Combine(tokenizerDir, "vocab.json"), Path.Combine(tokenizerDir, "merges.txt"), maxLength: maxLength);
        int latentSize = vae.Config.SampleSize >> (vae.Config.BlockOutChannels.Length - 1);
        var (unet, text) = init is { } m ? (m.UNet.Config, m.Text.Config) : Models(o, vae.Config.LatentChannels, latentSize);
        int levels = unet.BlockOutChannels.Length;
        if (latentSize % (1 << (levels - 1)) != 0)
            throw new CliException($"{Name}: {vaeFolder} gives {vae.Config.LatentChannels}×{latentSize}×{latentSize} latents, which a UNet of {levels} levels (--block-out-channels) cannot halve {levels - 1} times; use fewer levels or a VAE with larger latents");

        var prediction = o.Required("prediction_type") switch
        {
            "epsilon" => PredictionType.Epsilon, "v_prediction" => PredictionType.VPrediction, "sample" => PredictionType.Sample,
            var s => throw new CliException($"{Name}: --prediction-type must be epsilon, v_prediction or sample, got '{s}'"),
        };
        var betas = o.Required("beta_schedule") switch
        {
            "scaled_linear" => BetaSchedule.ScaledLinear, "linear" => BetaSchedule.Linear, "squaredcos_cap_v2" => BetaSchedule.SquaredCosCapV2,
            var s => throw new CliException($"{Name}: --beta-schedule must be scaled_linear, linear or squaredcos_cap_v2, got '{s}'"),
        };
        // Stable Diffusion's training schedule (β 0.00085 → 0.012), written as the DDPMScheduler diffusers' scripts save:
        // every key explicit (read back from its JSON), so that the pipeline's sampler made from it takes its "leading"
        // spacing as from_config does, on a fresh run as on a resumed one (which reads it from the checkpoint).
        var inCode = SchedulerConfig.DefaultsFor("DDPMScheduler") with
        {
            BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = betas, PredictionType = prediction, ClipSample = false,
            StepsOffset = 1, TimestepSpacing = TimestepSpacing.Leading,
        };
        var scheduler = SchedulerConfig.FromJson(inCode.ToJson(), "train-latent's noise schedule");
        var objective = new LatentObjective(o.Double("snr_gamma", 0), o.Double("noise_offset", 0));
        var config = new TrainConfig(BatchSize: o.Int("batch_size", 1), Lr: o.Double("lr", 0), WeightDecay: o.Double("weight_decay", 0),
            WarmupSteps: o.Int("warmup", 0), LrAnnealSteps: o.Int("lr_anneal_steps", 0), GradClip: o.Double("grad_clip", 0), EmaRate: o.Required("ema_rate"),
            TotalSteps: o.Long("steps"), Seed: (ulong)o.Long("seed"), LogInterval: o.Int("log_interval", 1), SampleInterval: o.Int("sample_interval", 0),
            SaveInterval: o.Int("save_interval", 0), OutputFolder: outFolder, DataSource: o.Required("data"));
        try { config.Validate(); objective.Validate(); } catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }
        var captions = o.String("captions") is { } captionFile ? ReadCaptions(captionFile, train.Count) : null;
        var drawing = new CaptionOptions(BareProbability: o.Double("bare_captions", 0));
        try { drawing.Validate(); } catch (ArgumentException e) { throw new CliException($"{Name}: --bare-captions: {e.Message}"); }

        Directory.CreateDirectory(outFolder);
        stdout.WriteLine($"encoding {train.Count} training images with {vaeFolder} ...");
        var cache = LatentCache.Encode(vae, train, pad);
        cache.Save(Path.Combine(outFolder, LatentsFile));
        RunFolder.Replace(Path.Combine(outFolder, "vae"), tmp => VaeFolder.Save(tmp, vae.Config, VaeFolder.Weights(vae)));
        RunFolder.Replace(Path.Combine(outFolder, "tokenizer"), tmp => PipelineFolder.SaveTokenizer(tmp, tokenizerDir, maxLength));
        if (captions is not null)
            AtomicFile.Write(Path.Combine(outFolder, CaptionsFile), s => s.Write(System.Text.Encoding.UTF8.GetBytes(string.Join("\n", captions) + "\n")));
        LatentTrainer trainer;
        try
        {
            trainer = new LatentTrainer(unet, text, scheduler, config, objective, tokenizer, Captioned(cache, train, outFolder, captions) with { Drawing = drawing });
            if (init is { } start)
            {
                trainer.InitializeFrom(start.UNet, start.Text, o.Required("init_from"));
                stdout.WriteLine($"fine-tuning the UNet and text encoder of {o.Required("init_from")}");
            }
        }
        catch (ArgumentException e) { throw new CliException($"{Name}: {e.Message}"); }
        long unetParams = trainer.Model.UNet.ParameterCount(), textParams = trainer.Model.TextEncoder.ParameterCount();
        stdout.WriteLine($"UNet2DConditionModel {string.Join(",", unet.BlockOutChannels)} ({unetParams:N0} parameters) on {string.Join("×", cache.LatentShape)} latents " +
            $"(scaling_factor {cache.ScalingFactor:G4}), CLIP text encoder {text.NumHiddenLayers}×{text.HiddenSize} ({textParams:N0}), {train.Count} captioned images");
        return trainer;
    }

    /// <summary>--init-from's UNet and text encoder, or null without it; the model options cannot be given with it.</summary>
    static (UNet2DConditionModel UNet, ClipTextModel Text)? InitialModels(ParsedOptions o)
    {
        if (o.String("init_from") is not { } folder) return null;
        string[] modelOptions = ["block_out_channels", "down_block_types", "layers_per_block", "attention_heads", "text_layers", "text_width", "text_heads"];
        if (modelOptions.FirstOrDefault(o.Given) is { } given)
            throw new CliException($"{Name}: --{OptionParser.Display(given)} cannot be given with --init-from (the models are {folder}'s)");
        foreach (var part in new[] { "unet", "text_encoder" })
            if (!Directory.Exists(Path.Combine(folder, part)))
                throw new CliException($"{Name}: --init-from {folder} has no {part}/ folder (it takes a pipeline folder with unet/ and text_encoder/)");
        return (ComponentLoader.LoadUNet2DCondition(Path.Combine(folder, "unet")), ClipTextModel.FromFolder(Path.Combine(folder, "text_encoder")));
    }

    /// <summary>The UNet and text encoder of the default options (what `bench latent` times), for latents of this shape.</summary>
    public static (UNet2DConditionConfig UNet, ClipTextConfig Text) DefaultModels(int latentChannels, int latentSize)
        => Models(OptionParser.Parse(Name, [], Options), latentChannels, latentSize);

    static (UNet2DConditionConfig UNet, ClipTextConfig Text) Models(ParsedOptions o, int latentChannels, int latentSize)
    {
        int width = o.Int("text_width", 1), maxLength = o.Int("max_length", 2, 77);
        var text = new ClipTextConfig(HiddenSize: width, IntermediateSize: 4 * width, NumHiddenLayers: o.Int("text_layers", 1),
            NumAttentionHeads: o.Int("text_heads", 1), MaxPositionEmbeddings: maxLength, ProjectionDim: width);
        try { text.Validate("--text-width/--text-heads"); } catch (InvalidDataException e) { throw new CliException($"{Name}: {e.Message}"); }
        return (UNetConfig(o, latentChannels, latentSize, width), text);
    }

    static UNet2DConditionConfig UNetConfig(ParsedOptions o, int latentChannels, int latent, int crossDim)
    {
        var channels = o.IntList("block_out_channels");
        int n = channels.Length;
        var downNames = o.Required("down_block_types").Split(',', StringSplitOptions.TrimEntries);
        if (downNames.Length != n) throw new CliException($"{Name}: --down-block-types has {downNames.Length} entries, --block-out-channels {n}");
        var down = downNames.Select(s => s switch
        {
            "CrossAttnDownBlock2D" => DownBlockType.CrossAttnDownBlock2D, "DownBlock2D" => DownBlockType.DownBlock2D,
            _ => throw new CliException($"{Name}: --down-block-types: '{s}' is not CrossAttnDownBlock2D or DownBlock2D"),
        }).ToArray();
        var up = down.Reverse().Select(d => d == DownBlockType.CrossAttnDownBlock2D ? UpBlockType.CrossAttnUpBlock2D : UpBlockType.UpBlock2D).ToArray();
        var heads = o.IntList("attention_heads");
        if (heads.Length == 1) heads = Enumerable.Repeat(heads[0], n).ToArray();
        if (heads.Length != n) throw new CliException($"{Name}: --attention-heads has {heads.Length} entries, --block-out-channels {n}");
        int layers = o.Int("layers_per_block", 1, 8);
        for (int i = 0; i < n; i++)
        {
            if (channels[i] < 32 || channels[i] % 32 != 0) throw new CliException($"{Name}: --block-out-channels {channels[i]} is not a positive multiple of 32 (the GroupNorm groups)");
            if (heads[i] < 1 || channels[i] % heads[i] != 0) throw new CliException($"{Name}: {heads[i]} attention heads do not divide {channels[i]} channels");
        }
        return new UNet2DConditionConfig
        {
            InChannels = latentChannels, OutChannels = latentChannels, SampleSize = latent,
            BlockOutChannels = channels, DownBlockTypes = down, UpBlockTypes = up, MidBlockType = MidBlockType.UNetMidBlock2DCrossAttn,
            LayersPerBlock = Enumerable.Repeat(layers, n).ToArray(), NumHeads = heads,
            CrossAttentionDim = Enumerable.Repeat(crossDim, n).ToArray(), OnlyCrossAttention = new bool[n],
            TransformerLayersPerBlock = Enumerable.Range(0, n).Select(_ => Enumerable.Repeat(1, layers).ToArray()).ToArray(),
        };
    }

    /// <summary>The cache's images with their labels and measured attributes (the images must be the cache's).</summary>
    static CaptionedLatents Captioned(LatentCache cache, ImageDataset train, string outFolder, string[]? captions)
    {
        if (cache.Count != train.Count)
            throw new CliException($"{Name}: {Path.Combine(outFolder, LatentsFile)} holds {cache.Count} latents, the data has {train.Count} images: resume with the same --data and --max-train");
        return new CaptionedLatents(cache, train.Labels!, FashionCaptions.Measure(train), captions);
    }

    /// <summary>One caption per line, line i for training image i (a final newline ends the last line, not a caption).</summary>
    static string[] ReadCaptions(string path, int count)
    {
        if (!File.Exists(path)) throw new CliException($"{Name}: caption file not found: {path}");
        var text = File.ReadAllText(path);
        if (text.Trim().Length == 0) throw new CliException($"{Name}: {path} is empty: it must hold one caption per training image ({count} lines)");
        var lines = text.ReplaceLineEndings("\n").Split('\n');
        if (lines.Length > 0 && lines[^1].Length == 0) lines = lines[..^1];
        if (lines.Length < count)
            throw new CliException($"{Name}: {path} has {lines.Length} captions, the data has {count} training images (one line each; `diffusharp captions` writes such a file)");
        return lines[..count];
    }

    static string[]? ReadCaptionCopy(string outFolder, int count)
    {
        string path = Path.Combine(outFolder, CaptionsFile);
        return File.Exists(path) ? ReadCaptions(path, count) : null;
    }

    /// <summary>A relative path that does not exist here is looked up beside the program (models/ of its repository).</summary>
    static string ToolPath(string path)
    {
        if (Directory.Exists(path) || Path.IsPathRooted(path)) return path;
        var parts = path.Replace('\\', '/').Split('/');
        if (parts.Length == 2 && parts[0] == "models" && ShippedModels.Find(parts[1], "vocab.json") is { } found) return found;
        return path;
    }

    static int Loop(LatentTrainer trainer, string outFolder, double saveMinutes, TextWriter stdout)
        => LatentTrainingLoop.Run(new LatentRun(trainer.Config, () => trainer.StepCount, trainer.Step, () => trainer.Epoch,
            () => Save(trainer, outFolder), () => WriteGrid(trainer, outFolder), Path.Combine(outFolder, PipelineFolderName)), outFolder, saveMinutes, stdout);

    /// <summary>The checkpoint, then pipeline/ from the EMA weights.</summary>
    static void Save(LatentTrainer trainer, string outFolder)
    {
        LatentCheckpoint.Save(trainer, outFolder);
        var weights = trainer.ExportWeights(trainer.Ema).ToList();
        var vae = ComponentLoader.LoadAutoencoderKL(Path.Combine(outFolder, "vae"));
        var meta = new Dictionary<string, string> { ["step"] = trainer.StepCount.ToString(CultureInfo.InvariantCulture) };
        RunFolder.Replace(Path.Combine(outFolder, PipelineFolderName), tmp => PipelineFolder.SaveStableDiffusion(tmp,
            new(trainer.UNetConfig, LatentTrainer.Part(weights, TextToImageModel.UNetPrefix)),
            new(trainer.TextConfig, LatentTrainer.Part(weights, TextToImageModel.TextEncoderPrefix)),
            new(vae.Config, VaeFolder.Weights(vae)), Path.Combine(outFolder, "tokenizer"), trainer.Tokenizer.MaxLength,
            DpmSolverConfig(trainer.NoiseScheduler), meta));
    }

    /// <summary>The pipeline's sampler: DPM-Solver++ 2M on the training schedule.</summary>
    static SchedulerConfig DpmSolverConfig(SchedulerConfig training) => SchedulerFactory.ConfigFor("dpm++2m", training, karras: false);

    /// <summary>samples/step_N.png: one row per class prompt, 8 seeds, 20 steps of DPM++ 2M at guidance 3 (EMA weights).</summary>
    static void WriteGrid(LatentTrainer trainer, string outFolder)
    {
        const int perPrompt = 8;
        var model = trainer.EmaModel();
        var vae = ComponentLoader.LoadAutoencoderKL(Path.Combine(outFolder, "vae"));
        vae.Eval();
        var pipe = new StableDiffusionPipeline(trainer.Tokenizer, model.TextEncoder, model.UNet, vae, SchedulerFactory.Create(DpmSolverConfig(trainer.NoiseScheduler)));
        int size = vae.Config.SampleSize, c = vae.Config.OutChannels;
        var all = new List<float>();
        using (Tensor.NoGrad())
            foreach (var prompt in GridPrompts)
            {
                using var scope = TensorScope.Begin();
                var r = pipe.Txt2Img(new Txt2ImgRequest(prompt, GuidanceScale: 3, Steps: 20, Width: size, Height: size, NumImages: perPrompt), new Rng(1));
                all.AddRange(r.Image.ToArray().Select(v => 2 * v - 1));            // [0, 1] → the grid's [−1, 1]
            }
        string dir = Path.Combine(outFolder, "samples");
        Directory.CreateDirectory(dir);
        Png.Write(Path.Combine(dir, $"step_{trainer.StepCount:D7}.png"), ImageGrid.Make(all.ToArray(), GridPrompts.Count * perPrompt, c, size, size, columns: perPrompt));
    }
}

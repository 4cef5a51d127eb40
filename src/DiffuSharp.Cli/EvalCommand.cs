// diffusharp eval: how good a model is, on Fashion-MNIST's test split.
//  (a) NLL: the full variational bound in bits/dim (iDDPM §2.1) over the first --nll-n test images, every trained
//      timestep (T model calls per batch); --nll-n 0 skips it.
//  (b) FD: --n samples (DDIM, --steps, class-balanced labels for a class-conditional model) and the first --n test
//      images, both through the shipped classifier; the Fréchet distance of their 128-d penultimate features. The
//      same distance between --n training images and those test images is printed beside it as the floor that
//      real data reaches at this N. --n 0 skips (b) and (c).
//  (c) For a class-conditional model: the classifier's accuracy on the samples against the labels asked for (when the
//      model's classes are Fashion-MNIST's: its folder names none, or names those ten in their order).
// Output: a table, or with --json one {"name", "value", "unit"} object per line (as `bench ops --json`).
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Data;
using DiffuSharp.Diffusion;
using DiffuSharp.Evaluation;
using DiffuSharp.Models;

namespace DiffuSharp.Cli;

public static class EvalCommand
{
    const string Name = "eval";

    static readonly OptionSpec[] Options =
    [
        new("model", "model folder (model.safetensors + model.json); default: the repository's models/fashion-mnist, or with --guidance models/fashion-mnist-cfg (the same model fine-tuned with a null label)", Value: "DIR"),
        new("n", "samples (and test images) for the Fréchet distance; 0 skips it", "1000", Value: "N"),
        new("nll-n", "test images for the NLL in bits/dim (T model calls per batch); 0 skips it", "16", Value: "N"),
        new("steps", "sampling steps", "50", Value: "S"),
        new("sampler", "ddim (improved-diffusion's loop) or any sampler of 'diffusharp sample --help' (dpm++2m, euler_a, unipc, heun, ...)", "ddim", Value: "NAME"),
        new("karras", "Karras sigmas for a diffusers sampler", IsFlag: true),
        new("guidance", "classifier-free guidance scale W of the samples (models trained with --class-dropout-prob; without --model, models/fashion-mnist-cfg; the NLL stays unguided)", Value: "W"),
        new("batch", "images per forward pass", "64", Value: "B"),
        new("classifier", "classifier folder (diffusharp train-classifier); default: the repository's models/classifier", "models/classifier", Value: "DIR"),
        new("data", "folder with the Fashion-MNIST IDX files", FashionMnist.DefaultFolder, Value: "DIR"),
        new("seed", "seed of the sampling noise and the NLL's noise", "0", Value: "N"),
        new("json", "print one JSON object per line", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "NLL in bits/dim, Fréchet distance and class accuracy of a model on Fashion-MNIST.", Options)); return 0; }
        int n = o.Int("n", min: 0), nllN = o.Int("nll-n", min: 0), batch = o.Int("batch", min: 1);
        int steps = o.Int("steps");
        if (steps < 1) throw new CliException($"{Name}: --steps must be at least 1, got {steps}");
        ulong seed = CliModel.Seed(Name, "seed", o.Required("seed"));
        bool json = o.Flag("json");
        if (n == 1) throw new CliException($"{Name}: --n must be 0 (skip) or at least 2 (a covariance needs two samples), got 1");

        string sampler = o.Required("sampler");
        if (sampler == "ddpm") throw new CliException($"{Name}: --sampler ddpm is not offered here (ancestral sampling over every step); use ddim or a diffusers sampler");
        if (sampler == "ddim" && o.Flag("karras")) throw new CliException($"{Name}: --karras applies to the diffusers schedulers, not --sampler ddim");
        if (sampler != "ddim") CliModel.CheckSamplerName(Name, sampler);
        string modelDir = ShippedModels.FolderFor(Name, o);
        var (config, unet) = ModelFolder.Load(modelDir);
        double? guidance = CliModel.Guidance(Name, o, config, modelDir);
        FashionClassifier? classifier = null;
        if (n > 0)
        {
            string folder = o.Required("classifier");
            if (!args.Contains("--classifier") && !Directory.Exists(folder)) folder = ShippedModels.Find("classifier", FashionClassifier.WeightsFile) ?? folder;
            if (!Directory.Exists(folder))
                throw new CliException($"{Name}: classifier folder not found: {folder}; pass --classifier DIR (made by train-classifier) or --n 0 to skip the sample metrics");
            classifier = FashionClassifier.Load(folder);
            var cc = classifier.Config;
            if (cc.InChannels != config.InChannels || cc.ImageSize != config.ImageSize)
                throw new CliException($"{Name}: the classifier reads ({cc.InChannels}, {cc.ImageSize}, {cc.ImageSize}) images, the model makes ({config.InChannels}, {config.ImageSize}, {config.ImageSize}); pass --n 0 to skip the sample metrics");
        }
        if (steps > config.DiffusionSteps) throw new CliException($"{Name}: --steps {steps} is more than the model's diffusion_steps {config.DiffusionSteps}");
        if (n == 0 && nllN == 0) throw new CliException($"{Name}: --n 0 and --nll-n 0 leave nothing to evaluate");
        var test = FashionMnist.Load(o.Required("data"), train: false);
        if (test.Channels != config.InChannels || test.Height != config.ImageSize || test.Width != config.ImageSize)
            throw new CliException($"{Name}: the test images are ({test.Channels}, {test.Height}, {test.Width}), the model makes ({config.InChannels}, {config.ImageSize}, {config.ImageSize})");
        if (n > test.Count || nllN > test.Count) throw new CliException($"{Name}: the test split holds {test.Count} images; --n and --nll-n must not exceed it");

        var rows = new List<(string Name, double Value, string Unit, string Note)>();
        int len = test.ImageLength;

        // (a) NLL over the full trained process.
        if (nllN > 0)
        {
            var clock = Stopwatch.StartNew();
            var diffusion = DiffusionFactory.Create(config.ToDiffusionConfig() with { TimestepRespacing = "" });
            var rng = new Rng(seed ^ 0x4E4C4CUL);
            double sum = 0;
            using var bar = ProgressBar.Start("eval nll", (long)((nllN + batch - 1) / batch) * diffusion.NumTimesteps);   // model calls
            for (int start = 0; start < nllN; start += batch)
            {
                int b = Math.Min(batch, nllN - start);
                var x0 = Tensor.FromArray(test.Images.AsSpan(start * len, b * len).ToArray(), b, test.Channels, test.Height, test.Width);
                int[]? labels = config.ClassCount is null ? null : test.Labels!.AsSpan(start, b).ToArray();
                var result = diffusion.CalcBpdLoop((x, t) => { var e = unet.Forward(x, t, labels); bar.Advance(); return e; }, x0, rng);
                foreach (float v in result.TotalBpd.ToArray()) sum += v;
            }
            double secs = clock.Elapsed.TotalSeconds;
            rows.Add(("nll", sum / nllN, "bits/dim", $"{nllN} test images, {config.DiffusionSteps} steps"));
            rows.Add(("nll_seconds", secs, "s", ""));
        }

        // (b), (c) Samples through the classifier.
        if (classifier is not null)
        {
            var clock = Stopwatch.StartNew();
            int? k = config.ClassCount;
            int[]? labels = k is int kk ? Enumerable.Range(0, n).Select(i => i % kk).ToArray() : null;
            var samples = Sample(config, unet, n, steps, batch, labels, seed, guidance, sampler, o.Flag("karras"));
            double sampleSecs = clock.Elapsed.TotalSeconds;
            int d = classifier.Config.FeatureDim;
            var (preds, genFeatures) = classifier.Predict(samples, n, batch);
            var (_, testFeatures) = classifier.Predict(test.Images.AsSpan(0, n * len), n, batch);
            rows.Add(("fd", FrechetDistance.Compute(genFeatures, n, testFeatures, n, d), "", $"{n} {SamplerLabel(sampler, o.Flag("karras"))}-{steps} samples{(guidance is double g ? $" (guidance {g.ToString(CultureInfo.InvariantCulture)})" : "")} vs {n} test images"));
            if (TrainSplit(o.Required("data")) is { } train && train.Count >= n)
            {
                var (_, trainFeatures) = classifier.Predict(train.Images.AsSpan(0, n * len), n, batch);
                rows.Add(("fd_train_vs_test", FrechetDistance.Compute(trainFeatures, n, testFeatures, n, d), "", $"{n} training images: the floor at this N"));
            }
            // the classifier knows Fashion-MNIST's classes: the accuracy only of a model whose labels are those
            var names = ClassNames.For(modelDir, config);
            if (labels is not null && k == classifier.Config.NumClasses && (names is null || ClassNames.AreFashionMnist(names)))
                rows.Add(("class_accuracy", preds.Zip(labels).Count(p => p.First == p.Second) / (double)n, "", "classifier on the samples vs the labels asked for"));
            rows.Add(("sample_seconds", sampleSecs, "s", ""));
        }

        if (json)
            foreach (var r in rows)
                stdout.WriteLine($"{{\"name\": \"{r.Name}\", \"value\": {r.Value.ToString("R", CultureInfo.InvariantCulture)}, \"unit\": \"{r.Unit}\"}}");
        else
        {
            stdout.WriteLine($"{"metric",-18} {"value",12}  {"unit",-9} note");
            foreach (var r in rows)
                stdout.WriteLine($"{r.Name,-18} {r.Value.ToString(r.Unit == "s" ? "F1" : "F4", CultureInfo.InvariantCulture),12}  {r.Unit,-9} {r.Note}".TrimEnd());
        }
        return 0;
    }

    static ImageDataset? TrainSplit(string folder)
    {
        try { return FashionMnist.Load(folder, train: true); }
        catch (DatasetNotFoundException) { return null; }
    }

    static string SamplerLabel(string sampler, bool karras) => sampler == "ddim" ? "DDIM" : sampler + (karras ? " Karras" : "");

    /// <summary>n samples in [-1, 1], (n, C, S, S) row-major, x_T from seed: improved-diffusion's DDIM (eta 0) over
    /// the section spacing "steps", or a diffusers scheduler over --steps timesteps of the model's schedule.</summary>
    static float[] Sample(ModelConfig config, NN.UNetModel unet, int n, int steps, int batch, int[]? labels, ulong seed, double? guidance = null,
        string sampler = "ddim", bool karras = false)
    {
        var diffusion = DiffusionFactory.Create(config.ToDiffusionConfig() with { TimestepRespacing = steps.ToString(CultureInfo.InvariantCulture) });
        int C = config.InChannels, S = config.ImageSize, len = C * S * S;
        var rng = new Rng(seed);
        var samples = new float[n * len];
        int calls = steps;                                   // model calls per batch: a scheduler's timesteps (Heun 2n − 1, PNDM n + 1)
        if (sampler != "ddim") { var sch = ModelSchedulers.Create(config, sampler, karras); sch.SetTimesteps(steps); calls = sch.Timesteps.Count; }
        using var bar = ProgressBar.Start("eval samples", (long)((n + batch - 1) / batch) * calls);
        for (int start = 0; start < n; start += batch)
        {
            int b = Math.Min(batch, n - start);
            int[]? cls = labels?.AsSpan(start, b).ToArray();
            DiffusionModel inner = guidance is double w
                ? ClassifierFreeGuidance.Create((xt, t, c) => unet.Forward(xt, t, c), cls!, config.NullLabel!.Value, w)
                : (xt, t) => unet.Forward(xt, t, cls);
            DiffusionModel fn = (xt, t) => { var e = inner(xt, t); bar.Advance(); return e; };
            Tensor x;
            if (sampler == "ddim") x = diffusion.DdimSampleLoop(fn, [b, C, S, S], rng);
            else
            {
                var scheduler = ModelSchedulers.Create(config, sampler, karras);
                x = Schedulers.SchedulerSampling.Sample(scheduler, ModelSchedulers.Denoiser(config, scheduler, fn), Tensor.RandN([b, C, S, S], rng), steps, rng, ModelSchedulers.TimestepScale(config));
            }
            x.ToArray().CopyTo(samples.AsSpan(start * len));
        }
        return samples;
    }
}

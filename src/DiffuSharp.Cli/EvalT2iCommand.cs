// diffusharp eval-t2i: how well a Fashion-MNIST text-to-image pipeline (train-latent's pipeline/, models/fashion-mnist-ldm)
// follows its prompts.
//  (a) "a photo of a {class}" for the ten class names, --n-per-class images each: the share the shipped classifier
//      recognises as the class asked for, and the Fréchet distance of the classifier's features of all of them against
//      as many test images (the same measure `eval` reports for the pixel model), beside the train-vs-test floor;
//  (b) --pairs prompt pairs that differ in one word, from the same initial latents: "a dark X" against "a light X"
//      (the share where the dark one's garment is darker: FashionAttributes brightness) and "a small X" against
//      "a large X" (silhouette area), X cycling through the class names.
// Images are made at the VAE's size (32×32 for train-vae's padding) and cropped back to 28×28 before measuring.
using System.Globalization;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Evaluation;
using DiffuSharp.Pipelines;

namespace DiffuSharp.Cli;

public static class EvalT2iCommand
{
    const string Name = "eval-t2i";

    static readonly OptionSpec[] Options =
    [
        new("model", "a Fashion-MNIST StableDiffusionPipeline folder (train-latent's <out>/pipeline); default: the shipped models/fashion-mnist-ldm", Value: "DIR"),
        new("data", "Fashion-MNIST folder (IDX .gz files)", FashionMnist.DefaultFolder, Value: "DIR"),
        new("n-per-class", "images per class prompt (0 = skip accuracy and FD)", "200", Value: "N"),
        new("pairs", "prompt pairs per attribute (dark/light, small/large; 0 = skip)", "500", Value: "N"),
        new("steps", "denoising steps", "25", Value: "S"),
        new("sampler", "scheduler by name (sample --help lists them)", "dpm++2m", Value: "NAME"),
        new("guidance", "classifier-free guidance scale", "3", Value: "W"),
        new("batch", "images per pipeline call", "50", Value: "B"),
        new("seed", "seed of the initial latents", "0", Value: "S"),
        new("classifier", "classifier folder; default: the repository's models/classifier", "models/classifier", Value: "DIR"),
        new("grid", "also write the first 10 images of each class prompt as a PNG grid (one row per class)", Value: "FILE"),
        new("json", "print one JSON object per measure", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Class accuracy, Fréchet distance and word-following of a Fashion-MNIST text-to-image pipeline.", Options)); return 0; }
        int perClass = o.Int("n-per-class", 0, 10000 / 10), pairs = o.Int("pairs", 0, 100000), steps = o.Int("steps", 1, 1000), batch = o.Int("batch", 1, 4096);
        if (perClass == 0 && pairs == 0) throw new CliException($"{Name}: --n-per-class 0 and --pairs 0 leave nothing to evaluate");
        double guidance = o.Double("guidance", 0);
        string model = ShippedModels.FlagOrShipped(Name, o, "model", ShippedModels.TextToImage, "model_index.json");
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(model), o.Required("sampler"));
        var vae = pipe.Vae.Config;
        int size = vae.SampleSize, pad = (size - 28) / 2, f = pipe.VaeScaleFactor;
        if (vae.OutChannels != 1 || pad < 0 || 28 + 2 * pad != size)
            throw new CliException($"{Name}: {model}'s VAE makes {vae.OutChannels}×{size}×{size} images; a Fashion-MNIST pipeline makes 1 × (28 + 2·pad)² gray images");
        ulong seed = (ulong)o.Long("seed");
        var rows = new List<(string Name, double Value, string Note)>();
        var inv = CultureInfo.InvariantCulture;

        // Generates count images of one prompt from the latents of seeds base, base + 1, …: (count, 28·28) in [−1, 1].
        float[] Generate(string prompt, ulong baseSeed, int count)
        {
            var result = new float[count * 28 * 28];
            int[] shape = [1, pipe.UNet.Config.InChannels, size / f, size / f];
            for (int start = 0; start < count; start += batch)
            {
                int b = Math.Min(batch, count - start);
                var latents = new float[b * shape[1] * shape[2] * shape[3]];
                for (int i = 0; i < b; i++)
                    Tensor.RandN(shape, new Rng(baseSeed + (ulong)(start + i))).ToArray().CopyTo(latents, i * shape[1] * shape[2] * shape[3]);
                using var scope = TensorScope.Begin();
                var r = pipe.Txt2Img(new Txt2ImgRequest(prompt, GuidanceScale: guidance, Steps: steps, Width: size, Height: size, NumImages: b,
                    Latents: Tensor.FromArray(latents, b, shape[1], shape[2], shape[3])), new Rng(baseSeed));
                var img = r.Image.ToArray();                                    // (b, 1, size, size) in [0, 1]
                for (int i = 0; i < b; i++)
                    for (int y = 0; y < 28; y++)
                        for (int x = 0; x < 28; x++)
                            result[((start + i) * 28 + y) * 28 + x] = 2 * img[(i * size + y + pad) * size + x + pad] - 1;
            }
            return result;
        }

        using var noGrad = Tensor.NoGrad();
        var names = FashionCaptions.ClassNames;
        if (perClass > 0)
        {
            string folder = o.Required("classifier");
            if (!o.Given("classifier") && !Directory.Exists(folder)) folder = ShippedModels.Find("classifier", FashionClassifier.WeightsFile) ?? folder;
            if (!Directory.Exists(folder)) throw new CliException($"{Name}: classifier folder not found: {folder}; pass --classifier DIR or --n-per-class 0");
            var classifier = FashionClassifier.Load(folder);
            int n = perClass * names.Count, len = 28 * 28;
            var all = new float[n * len];
            var labels = new int[n];
            for (int c = 0; c < names.Count; c++)
            {
                Generate("a photo of " + FashionCaptions.WithArticle(names[c]), seed + (ulong)(c * perClass), perClass).CopyTo(all, c * perClass * len);
                Array.Fill(labels, c, c * perClass, perClass);
            }
            var (predicted, features) = classifier.Predict(all, n);
            double accuracy = predicted.Where((p, i) => p == labels[i]).Count() / (double)n;
            var test = FashionMnist.Load(o.Required("data"), train: false);
            var train = FashionMnist.Load(o.Required("data"), train: true);
            int d = classifier.Config.FeatureDim;
            var (_, testF) = classifier.Predict(test.Images.AsSpan(0, n * len), n);
            var (_, trainF) = classifier.Predict(train.Images.AsSpan(0, n * len), n);
            string how = $"{steps} steps, guidance {guidance.ToString(inv)}";
            rows.Add(("class_accuracy", accuracy, $"{n} images of \"a photo of a {{class}}\" ({perClass} per class, {how}) recognised as the class asked for"));
            rows.Add(("fd", FrechetDistance.Compute(features, n, testF, n, d), $"those {n} images vs {n} test images"));
            rows.Add(("fd_train_vs_test", FrechetDistance.Compute(trainF, n, testF, n, d), $"{n} training images: the floor at this N"));
            if (o.String("grid") is { } grid)
            {
                int cols = Math.Min(10, perClass);
                var shown = new float[names.Count * cols * len];
                for (int c = 0; c < names.Count; c++) all.AsSpan(c * perClass * len, cols * len).CopyTo(shown.AsSpan(c * cols * len));
                Imaging.ImageFile.Write(grid, Imaging.ImageGrid.Make(shown, names.Count * cols, 1, 28, 28, columns: cols));
            }
        }
        if (pairs > 0)
        {
            (string Low, string High, Func<FashionAttributes, double> Measure, string What)[] words =
                [("dark", "light", a => a.Brightness, "brightness"), ("small", "large", a => a.Size, "silhouette area")];
            foreach (var (low, high, measure, what) in words)
            {
                int obeyed = 0;
                for (int c = 0; c < names.Count; c++)
                {
                    int count = pairs / names.Count + (c < pairs % names.Count ? 1 : 0);
                    if (count == 0) continue;
                    ulong pairSeed = seed + 1_000_000UL + (ulong)(c * pairs);
                    var a = Generate(FashionCaptions.WithArticle($"{low} {names[c]}"), pairSeed, count);
                    var b = Generate(FashionCaptions.WithArticle($"{high} {names[c]}"), pairSeed, count);
                    for (int i = 0; i < count; i++)
                        if (measure(FashionAttributes.Measure(a.AsSpan(i * 784, 784), 28, 28)) < measure(FashionAttributes.Measure(b.AsSpan(i * 784, 784), 28, 28))) obeyed++;
                }
                rows.Add(($"{low}_below_{high}", obeyed / (double)pairs, $"{pairs} pairs \"a {low} X\" / \"a {high} X\" from the same latents where the first has the lower {what}"));
            }
        }
        foreach (var (name, value, note) in rows)
            stdout.WriteLine(o.Flag("json")
                ? new JsonObject { ["name"] = name, ["value"] = value, ["note"] = note, ["model"] = model }.ToJsonString()
                : string.Create(inv, $"{name,-20} {value,10:F4}   {note}"));
        return 0;
    }
}

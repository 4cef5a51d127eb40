// diffusharp eval-vae: how well a VAE folder reproduces Fashion-MNIST test images: PSNR of the reconstructions
// (posterior mode, decoded, clamped, cropped back to 28×28) over --n test images, and the Fréchet distance of the
// shipped classifier's features of --fd-n reconstructions against the same test images, beside the distance of as
// many training images to them (the floor at that N), as `eval` reports for samples.
using System.Globalization;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Evaluation;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Cli;

public static class EvalVaeCommand
{
    const string Name = "eval-vae";

    static readonly OptionSpec[] Options =
    [
        new("vae", "a diffusers AutoencoderKL folder (train-vae's <out>/vae); default: the shipped models/fashion-mnist-ldm/vae", Value: "DIR"),
        new("data", "Fashion-MNIST folder (IDX .gz files)", FashionMnist.DefaultFolder, Value: "DIR"),
        new("n", "test images for the PSNR (1..10000)", "10000", Value: "N"),
        new("fd-n", "test images for the Fréchet distance (0 = skip)", "2000", Value: "N"),
        new("classifier", "classifier folder; default: the repository's models/classifier", "models/classifier", Value: "DIR"),
        new("json", "print one JSON object per measure", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "PSNR and Fréchet distance of a VAE's reconstructions of Fashion-MNIST test images.", Options)); return 0; }
        int n = o.Int("n", 1, 10000), fdN = o.Int("fd-n", 0, 10000);
        string vaeDir = ShippedModels.FlagOrShipped(Name, o, "vae", ShippedModels.TextToImage + "/vae", "config.json");
        var vae = ComponentLoader.LoadAutoencoderKL(vaeDir);
        var c = vae.Config;
        int pad = (c.SampleSize - 28) / 2;
        if (c.InChannels != 1 || c.OutChannels != 1 || pad < 0 || 28 + 2 * pad != c.SampleSize)
            throw new CliException($"{Name}: {vaeDir} is a {c.InChannels}→{c.OutChannels} channel VAE of sample_size {c.SampleSize}; Fashion-MNIST needs 1 channel and 28 + 2·pad pixels");
        FashionClassifier? classifier = null;
        if (fdN > 0)
        {
            string folder = o.Required("classifier");
            if (!args.Contains("--classifier") && !Directory.Exists(folder)) folder = ShippedModels.Find("classifier", FashionClassifier.WeightsFile) ?? folder;
            if (!Directory.Exists(folder)) throw new CliException($"{Name}: classifier folder not found: {folder}; pass --classifier DIR or --fd-n 0");
            classifier = FashionClassifier.Load(folder);
        }
        var test = FashionMnist.Load(o.Required("data"), train: false);
        var recon = VaeEvaluation.Reconstruct(vae, test, pad, Math.Max(n, fdN));
        int len = test.ImageLength;
        var psnr = VaeEvaluation.Psnr(test.Images.AsSpan(0, n * len), recon.AsSpan(0, n * len), n);
        var rows = new List<(string Name, double Value, string Note)>
        {
            ("psnr_db", psnr.PooledDb, $"{n} test images, from the MSE of all pixels in [0, 1]"),
            ("psnr_mean_per_image_db", psnr.MeanPerImageDb, "the mean of each image's PSNR (as Stable Diffusion's VAE cards report it)"),
            ("psnr_std_per_image_db", psnr.StdPerImageDb, "the standard deviation of the images' PSNRs"),
        };
        if (classifier is not null)
        {
            var train = FashionMnist.Load(o.Required("data"), train: true);
            int d = classifier.Config.FeatureDim;
            var (_, reconF) = classifier.Predict(recon.AsSpan(0, fdN * len), fdN);
            var (_, testF) = classifier.Predict(test.Images.AsSpan(0, fdN * len), fdN);
            var (_, trainF) = classifier.Predict(train.Images.AsSpan(0, fdN * len), fdN);
            rows.Add(("fd_reconstructions", FrechetDistance.Compute(reconF, fdN, testF, fdN, d), $"{fdN} reconstructions vs the same {fdN} test images"));
            rows.Add(("fd_train_vs_test", FrechetDistance.Compute(trainF, fdN, testF, fdN, d), $"{fdN} training images: the floor at this N"));
        }
        foreach (var (name, value, note) in rows)
            stdout.WriteLine(o.Flag("json")
                ? new JsonObject { ["name"] = name, ["value"] = value, ["note"] = note, ["vae"] = vaeDir }.ToJsonString()
                : string.Create(CultureInfo.InvariantCulture, $"{name,-24} {value,10:F3}   {note}"));
        return 0;
    }
}

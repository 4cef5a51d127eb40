// diffusharp train-classifier: trains the Fashion-MNIST classifier that `eval` uses for its Fréchet distance and
// class accuracy, and writes it as a classifier folder (classifier.safetensors + classifier.json with the test
// accuracy and the settings it was trained with).
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Evaluation;

namespace DiffuSharp.Cli;

public static class TrainClassifierCommand
{
    static readonly OptionSpec[] Options =
    [
        new("data", "folder with the Fashion-MNIST IDX files", FashionMnist.DefaultFolder, Value: "DIR"),
        new("out", "classifier folder to write", "models/classifier", Value: "DIR"),
        new("epochs", "passes over the 60,000 training images", "6", Value: "N"),
        new("batch", "images per step", "64", Value: "B"),
        new("lr", "peak AdamW learning rate (decays linearly to 0)", "2e-3", Value: "LR"),
        new("seed", "seed of the initialisation and the batch order", "0", Value: "N"),
        new("max-train", "use only the first N training images (0 = all)", "0", Value: "N"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("train-classifier", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("train-classifier", "Trains the Fashion-MNIST classifier used by eval.", Options)); return 0; }
        var config = new ClassifierTrainConfig(Epochs: o.Int("epochs", min: 1), BatchSize: o.Int("batch", min: 1), Lr: o.Double("lr", min: 0),
            Seed: ulong.TryParse(o.Required("seed"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var sd)
                ? sd : throw new CliException($"train-classifier: --seed expects a non-negative integer, got '{o.Required("seed")}'"));
        int maxTrain = o.Int("max-train", min: 0);
        string folder = o.Required("data"), outFolder = o.Required("out");

        var train = FashionMnist.Load(folder, train: true);
        var test = FashionMnist.Load(folder, train: false);
        if (maxTrain > 0 && maxTrain < train.Count)
            train = new ImageDataset(train.Images.AsSpan(0, maxTrain * train.ImageLength).ToArray(), maxTrain, train.Channels, train.Height, train.Width,
                train.Labels!.AsSpan(0, maxTrain).ToArray(), train.NumClasses);
        if (config.BatchSize > train.Count) throw new CliException($"train-classifier: --batch {config.BatchSize} is larger than the {train.Count} training images");

        var clock = Stopwatch.StartNew();
        ClassifierEpoch? last = null;
        var model = ClassifierTraining.Train(train, test, config, e =>
        {
            last = e;
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {e.Epoch}/{config.Epochs}: train loss {e.TrainLoss:F4}, train accuracy {e.TrainAccuracy:P2}, test accuracy {e.TestAccuracy:P2} ({e.Seconds:F0} s)"));
        });
        double seconds = clock.Elapsed.TotalSeconds;
        model.Save(outFolder, new JsonObject
        {
            ["test_accuracy"] = Math.Round(last!.TestAccuracy, 4),
            ["test_images"] = test.Count,
            ["train_images"] = train.Count,
            ["epochs"] = config.Epochs, ["batch"] = config.BatchSize, ["lr"] = config.Lr, ["weight_decay"] = config.WeightDecay,
            ["random_flip"] = config.RandomFlip, ["seed"] = config.Seed,
            ["train_seconds"] = Math.Round(seconds),
            ["command"] = "diffusharp train-classifier " + string.Join(" ", args),
        });
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"test accuracy {last.TestAccuracy:P2} after {seconds:F0} s; wrote {outFolder}"));
        return 0;
    }
}

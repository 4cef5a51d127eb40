// eval end to end on a tiny random 28×28 model, a small IDX stand-in for Fashion-MNIST and a random classifier:
// the table and the JSON lines carry NLL, the Fréchet distances and (class-conditional) the class accuracy; the
// train-vs-test distance equals the one computed here from the classifier's features.
using System.Globalization;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Evaluation;
using DiffuSharp.Tests.Data;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class EvalCommandTests
{
    /// <summary>t10k-* and train-* IDX files of count smooth random 28×28 images labelled i % 10.</summary>
    internal static string IdxFolder(string dir, int count = 24)
    {
        string folder = Path.Combine(dir, "fm");
        Directory.CreateDirectory(folder);
        foreach (var (prefix, seed) in new[] { ("t10k", 1UL), ("train", 2UL) })
        {
            var rng = new Rng(seed);
            var px = new byte[count * 784];
            for (int n = 0; n < count; n++)
            {
                double fx = rng.NextDouble() * 0.5, fy = rng.NextDouble() * 0.5, ph = rng.NextDouble() * 6;
                for (int i = 0; i < 784; i++) px[n * 784 + i] = (byte)(127.5 + 127 * Math.Sin(fx * (i % 28) + fy * (i / 28) + ph));
            }
            File.WriteAllBytes(Path.Combine(folder, $"{prefix}-images-idx3-ubyte"), IdxTests.IdxBytes(2051, [count, 28, 28], px));
            File.WriteAllBytes(Path.Combine(folder, $"{prefix}-labels-idx1-ubyte"), IdxTests.IdxBytes(2049, [count], Enumerable.Range(0, count).Select(i => (byte)(i % 10)).ToArray()));
        }
        return folder;
    }

    internal static string RandomClassifier(string dir)
    {
        string folder = Path.Combine(dir, "classifier");
        new FashionClassifier(new ClassifierConfig(Channels1: 8, Channels2: 8, Channels3: 8), new Rng(3)).Save(folder);
        return folder;
    }

    static Dictionary<string, double> JsonRows(string stdout)
    {
        var objs = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.All(objs, o => Assert.Equal(["name", "value", "unit"], o.Select(kv => kv.Key).ToArray()));
        return objs.ToDictionary(o => o["name"]!.GetValue<string>(), o => o["value"]!.GetValue<double>());
    }

    [Fact]
    public void Eval_prints_nll_fd_and_the_train_floor_as_json()
    {
        string dir = TrainingFixtures.TempFolder("eval");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir, imageSize: 28), data = IdxFolder(dir), clf = RandomClassifier(dir);
            var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["eval", "--model", model, "--data", data, "--classifier", clf,
                "--n", "12", "--nll-n", "2", "--steps", "2", "--batch", "6", "--json"]);
            Assert.True(code == 0, stderr);
            var rows = JsonRows(stdout);
            Assert.InRange(rows["nll"], 0.01, 100);
            Assert.True(rows["fd"] > 0);
            Assert.DoesNotContain("class_accuracy", stdout);

            var c = FashionClassifier.Load(clf);
            var test = FashionMnist.Load(data, train: false);
            var train = FashionMnist.Load(data, train: true);
            var (_, ft) = c.Predict(test.Images.AsSpan(0, 12 * 784), 12);
            var (_, fr) = c.Predict(train.Images.AsSpan(0, 12 * 784), 12);
            double expected = FrechetDistance.Compute(fr, 12, ft, 12, 128);
            Assert.True(expected > 0);
            Assert.Equal(expected, rows["fd_train_vs_test"], 1e-9 * expected);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Eval_of_a_class_conditional_model_reports_the_class_accuracy_in_a_table()
    {
        string dir = TrainingFixtures.TempFolder("eval-cc");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir, classCond: true, imageSize: 28, numClasses: 10), data = IdxFolder(dir), clf = RandomClassifier(dir);
            var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["eval", "--model", model, "--data", data, "--classifier", clf,
                "--n", "10", "--nll-n", "0", "--steps", "2"]);
            Assert.True(code == 0, stderr);
            var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.StartsWith("metric", lines[0]);
            var byName = lines.Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture));
            Assert.False(byName.ContainsKey("nll"));
            Assert.InRange(byName["class_accuracy"], 0, 1);
            Assert.Equal(Math.Round(byName["class_accuracy"] * 10), byName["class_accuracy"] * 10, 6);   // k of 10 samples
            Assert.True(byName["fd"] > 0);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

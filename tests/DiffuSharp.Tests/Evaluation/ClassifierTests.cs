// The Fashion-MNIST classifier: forward and backward through the engine (finite differences on the input and on
// weights of the first and last layers, and on the cross-entropy), a few AdamW steps overfit a small batch, a saved
// folder loads back to the same predictions, and the shipped weights in models/classifier reach 90% on the first
// 1000 test images (skipped, saying why, when Fashion-MNIST is not installed).
using DiffuSharp.Data;
using DiffuSharp.Evaluation;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Evaluation;

public sealed class ClassifierTests
{
    [Fact]
    public void Forward_and_backward_match_finite_differences()
    {
        var rng = new Rng(1);
        var model = new FashionClassifier(new ClassifierConfig(Channels1: 4, Channels2: 8, Channels3: 8, FeatureDim: 16), new Rng(2));
        var x = Tensor.Rand([3, 1, 28, 28], rng, -1, 1);
        var (logits, features) = model.Forward(x);
        Assert.Equal([3, 10], logits.Shape);
        Assert.Equal([3, 16], features.Shape);
        var p = model.NamedParameters().ToDictionary(q => q.Name, q => q.Param);
        Assert.Equal(["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"],
            p.Keys.ToArray());
        GradCheck.Check(_ => model.Forward(x).Logits, [x, p["conv1.weight"], p["conv3.weight"], p["fc2.weight"]], rng, samples: 24);
        GradCheck.Check(_ => model.Forward(x).Features, [p["conv2.bias"], p["fc1.weight"]], rng, samples: 24);
    }

    [Fact]
    public void Cross_entropy_is_the_mean_negative_log_likelihood_with_its_gradient()
    {
        var rng = new Rng(3);
        var logits = Tensor.RandN([4, 5], rng);
        int[] labels = [0, 4, 2, 2];
        var v = logits.ToArray();
        double expected = 0;
        for (int i = 0; i < 4; i++)
        {
            double lse = Math.Log(Enumerable.Range(0, 5).Sum(j => Math.Exp(v[i * 5 + j])));
            expected += (lse - v[i * 5 + labels[i]]) / 4;
        }
        Assert.Equal(expected, FashionClassifier.CrossEntropy(logits, labels).Item(), 5);
        GradCheck.Check(t => FashionClassifier.CrossEntropy(t[0], labels).Reshape(1), [logits], rng);
        Assert.Throws<ArgumentException>(() => FashionClassifier.CrossEntropy(logits, [0, 1, 2, 5]));
    }

    [Fact]
    public void AdamW_steps_overfit_a_small_batch_and_a_saved_folder_loads_back()
    {
        var rng = new Rng(4);
        var model = new FashionClassifier(new ClassifierConfig(Channels1: 8, Channels2: 8, Channels3: 8, FeatureDim: 16), new Rng(5));
        var flat = model.PackParameters();
        var all = Tensor.Wrap(flat.Values, flat.Values.Length);
        all.Grad = Tensor.Wrap(flat.Grads, flat.Grads.Length);
        var opt = new AdamW([all], new AdamWConfig(Lr: 1e-2));
        var x = Tensor.Rand([8, 1, 28, 28], rng, -1, 1);
        int[] labels = [0, 1, 2, 3, 4, 5, 6, 7];
        double first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            model.ZeroGrad();
            var loss = FashionClassifier.CrossEntropy(model.Forward(x).Logits, labels);
            loss.Backward();
            opt.Step();
            if (step == 0) first = loss.Item();
            last = loss.Item();
        }
        Assert.True(last < 0.2 * first, $"loss {first} → {last}");
        var (preds, _) = model.Predict(x.ToArray(), 8);
        Assert.Equal(labels, preds);

        using var dir = new TempDir();
        model.Save(dir.Path);
        var loaded = FashionClassifier.Load(dir.Path);
        var (again, features) = loaded.Predict(x.ToArray(), 8, batch: 3);
        Assert.Equal(preds, again);
        Assert.Equal(model.Predict(x.ToArray(), 8).Features, features);
    }

    [Fact]
    public void Shipped_weights_load()
    {
        string folder = Path.Combine(TestPaths.RepoRoot, "models", "classifier");
        Assert.True(File.Exists(Path.Combine(folder, FashionClassifier.WeightsFile)), $"the shipped classifier is missing from {folder}");
        var model = FashionClassifier.Load(folder);
        Assert.Equal(128, model.Config.FeatureDim);
        Assert.Equal(10, model.Config.NumClasses);
    }

    [FashionMnistFact]
    public void Shipped_weights_reach_90_percent_on_the_first_1000_test_images()
    {
        var model = FashionClassifier.Load(Path.Combine(TestPaths.RepoRoot, "models", "classifier"));
        double accuracy = ClassifierTraining.Accuracy(model, FashionMnist.Load(train: false), limit: 1000);
        Assert.True(accuracy >= 0.90, $"accuracy {accuracy:P2} on the first 1000 test images");
    }
}

/// <summary>A fact that is skipped, with the reason, when Fashion-MNIST is not installed where the package puts it.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public FashionMnistFactAttribute()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultFolder, "t10k-images-idx3-ubyte.gz")))
            Skip = $"Fashion-MNIST is not installed in {FashionMnist.DefaultFolder}: {FashionMnist.InstallHint}";
    }
}

// The class-conditional Fashion-MNIST model shipped in models/fashion-mnist: its folder is a valid model of at most
// 25 MB, `diffusharp sample` draws from it when no --model is given, and its DDIM samples are the garments asked for
// (the shipped classifier recognises most of a class-balanced batch).
using DiffuSharp.Cli;
using DiffuSharp.Evaluation;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class ShippedModelTests
{
    static string Folder => Path.Combine(TestPaths.RepoRoot, "models", SampleCommand.ShippedModel);

    [Fact]
    public void The_shipped_model_is_a_class_conditional_fashion_mnist_model_of_at_most_25_mb()
    {
        Assert.True(File.Exists(Path.Combine(Folder, "model.safetensors")), $"the shipped model is missing from {Folder}");
        long bytes = new DirectoryInfo(Folder).GetFiles().Sum(f => f.Length);
        Assert.True(bytes <= 25L << 20, $"models/{SampleCommand.ShippedModel} holds {bytes:N0} bytes");
        var (config, _) = ModelFolder.Load(Folder);
        Assert.Equal((28, 1, 10), (config.ImageSize, config.InChannels, config.ClassCount ?? 0));
    }

    [Fact]
    public void Sample_without_a_model_draws_from_the_shipped_one_and_its_samples_are_the_classes_asked_for()
    {
        string dir = TrainingFixtures.TempFolder("shipped");
        try
        {
            string grid = Path.Combine(dir, "grid.png"), npy = Path.Combine(dir, "s.npy");
            var (code, _, stderr) = TrainSampleEndToEndTests.Cli(["sample", "--n", "40", "--batch", "40", "--steps", "20", "--class", "balanced",
                                                                  "--seed", "1", "--out", grid, "--save-npy", npy]);
            Assert.True(code == 0, stderr);
            var image = Png.Read(grid);
            Assert.Equal((7 * (28 + 2) + 2, 6 * (28 + 2) + 2), (image.Width, image.Height));
            var (shape, samples) = Npy.ReadFloat32(npy);
            Assert.Equal([40, 1, 28, 28], shape);
            var classifier = FashionClassifier.Load(Path.Combine(TestPaths.RepoRoot, "models", "classifier"));
            var (predictions, _) = classifier.Predict(samples, 40);
            int right = predictions.Select((p, i) => p == i % 10 ? 1 : 0).Sum();
            // eval --n 2000 measures the model's accuracy (BENCHMARKS.md); 40 samples in 20 steps are a smaller, noisier
            // draw of the same, and an untrained or wrongly loaded model scores about 4 in 40
            Assert.True(right >= 24, $"the classifier recognised {right} of 40 samples as the class asked for");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

// Bad input to interpolate, invert, eval and train-classifier, and corrupt model folders and checkpoints: each is a
// non-zero exit and exactly one "error: …" line that names the problem, never a stack trace.
using DiffuSharp.Models;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class NewCommandErrorTests : IDisposable
{
    readonly string _dir = TrainingFixtures.TempFolder("cli-errors");
    readonly string _model, _image, _notPng, _data, _classifier;

    public NewCommandErrorTests()
    {
        _model = CliModelFixture.TinyModelFolder(_dir);
        _image = CliModelFixture.PngFile(_dir, "x.png");
        _notPng = Path.Combine(_dir, "notes.png");
        File.WriteAllText(_notPng, "this is text, not an image");
        _data = EvalCommandTests.IdxFolder(_dir, count: 4);
        _classifier = EvalCommandTests.RandomClassifier(_dir);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string[] Args(string line) => line.Replace("MODEL", _model).Replace("IMAGE", _image).Replace("NOTPNG", _notPng).Replace("DIR", _dir)
        .Replace("DATA", _data).Replace("CLF", _classifier).Split(' ');

    [Theory]
    // unknown options
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --bogus 1", "unknown option --bogus")]
    [InlineData("invert --model MODEL --image IMAGE --stpes 3", "unknown option --stpes (did you mean --steps?)")]
    [InlineData("eval --model MODEL --fid 3", "unknown option --fid")]
    [InlineData("train-classifier --epoch 3", "unknown option --epoch")]
    [InlineData("frobnicate", "unknown command 'frobnicate'")]
    // impossible values
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --steps 0", "--steps must be at least 1")]
    [InlineData("invert --model MODEL --image IMAGE --steps 0", "--steps must be at least 1")]
    [InlineData("eval --model MODEL --steps 0", "--steps must be at least 1")]
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --steps 5 --eta -0.5", "--eta must be non-negative")]
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --lambdas 0,1.5", "--lambdas value must lie in [0, 1]")]
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --t 50", "--t must be in 0..49")]
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --steps 80", "more than the model's diffusion_steps 50")]
    [InlineData("interpolate --model MODEL --images IMAGE", "--images needs two values")]
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --seeds 1 2", "either --images")]
    [InlineData("interpolate --model MODEL --seeds 1 x", "--seeds expects a non-negative integer")]
    [InlineData("interpolate --model MODEL --images IMAGE IMAGE --class 1", "not class-conditional")]
    [InlineData("invert --model MODEL --image IMAGE --out DIR/missing/inv.png", "does not exist")]
    [InlineData("eval --model MODEL --n 1", "--n must be 0 (skip) or at least 2")]
    [InlineData("eval --model MODEL --batch 0", "--batch-size must be at least 1")]
    [InlineData("train-classifier --epochs 0", "--epochs must be at least 1")]
    // missing, unreadable or non-PNG images
    [InlineData("invert --model MODEL --image DIR/none.png", "image not found")]
    [InlineData("invert --model MODEL --image NOTPNG", "not an image")]
    [InlineData("invert --model MODEL --image DIR", "is a folder, not an image")]
    [InlineData("interpolate --model MODEL --images IMAGE NOTPNG", "not an image")]
    // missing dataset, classifier or model
    [InlineData("eval --model MODEL --data DIR/nowhere --n 0", "Fashion-MNIST not found")]
    [InlineData("train-classifier --data DIR/nowhere", "Fashion-MNIST not found")]
    [InlineData("eval --model MODEL --data DATA --classifier DIR/noclf", "classifier folder not found")]
    [InlineData("invert --model DIR/nomodel --image IMAGE", "model folder not found")]
    [InlineData("eval --model MODEL --data DATA --classifier CLF --n 2", "the classifier reads (1, 28, 28) images, the model makes (1, 8, 8)")]
    public void Bad_input_is_one_error_line(string line, string expected) => TrainSampleEndToEndTests.AssertOneLineError(Args(line), expected);

    [Fact]
    public void Corrupt_model_folders_and_classifiers_are_one_error_line()
    {
        string bad = Path.Combine(_dir, "bad");
        Directory.CreateDirectory(bad);
        File.Copy(Path.Combine(_model, "model.json"), Path.Combine(bad, "model.json"));
        File.WriteAllBytes(Path.Combine(bad, "model.safetensors"), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        TrainSampleEndToEndTests.AssertOneLineError(["invert", "--model", bad, "--image", _image], "model.safetensors");
        // Truncated weights: the header promises more bytes than the file holds.
        var good = File.ReadAllBytes(Path.Combine(_model, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(bad, "model.safetensors"), good[..(good.Length / 2)]);
        TrainSampleEndToEndTests.AssertOneLineError(["interpolate", "--model", bad, "--seeds", "1", "2"], "model.safetensors");
        // Image size not divisible by the UNet's downsampling factor.
        File.WriteAllText(Path.Combine(bad, "model.json"), "{ \"image_size\": 9, \"channel_mult\": \"1,2\", \"in_channels\": 1, \"num_channels\": 32, \"attention_resolutions\": \"\" }");
        TrainSampleEndToEndTests.AssertOneLineError(["invert", "--model", bad, "--image", _image], "not divisible");
        TrainSampleEndToEndTests.AssertOneLineError(["eval", "--model", bad, "--n", "0"], "not divisible");
        // A classifier folder with a corrupt config or weights.
        File.WriteAllText(Path.Combine(_classifier, "classifier.json"), "{ \"feature_dim\": ");
        TrainSampleEndToEndTests.AssertOneLineError(["eval", "--model", _model, "--data", _data, "--classifier", _classifier, "--n", "2"], "not valid JSON");
        File.WriteAllText(Path.Combine(_classifier, "classifier.json"), "{ }");
        File.WriteAllBytes(Path.Combine(_classifier, "classifier.safetensors"), new byte[40]);
        TrainSampleEndToEndTests.AssertOneLineError(["eval", "--model", _model, "--data", _data, "--classifier", _classifier, "--n", "2"], "classifier.safetensors");
    }

    [Fact]
    public void A_corrupt_checkpoint_is_one_error_line()
    {
        string run = Path.Combine(_dir, "run");
        var data = Path.Combine(_dir, "pngs");
        Directory.CreateDirectory(data);
        for (int i = 0; i < 4; i++) CliModelFixture.PngFile(data, $"{i}.png", phase: i);
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli(["train", "--preset", "tiny", "--image_size", "8", "--channel_mult", "1,2", "--diffusion_steps", "50",
            "--data", "folder:" + data, "--batch_size", "2", "--steps", "1", "--out", run]);
        Assert.True(code == 0, stderr);
        string ckpt = Path.Combine(run, "checkpoint");
        File.WriteAllText(Path.Combine(ckpt, "trainer.json"), "{ \"step\": ");
        TrainSampleEndToEndTests.AssertOneLineError(["train", "--resume", "--steps", "2", "--out", run], "trainer.json");
        File.Delete(Path.Combine(ckpt, "trainer.json"));
        TrainSampleEndToEndTests.AssertOneLineError(["train", "--resume", "--steps", "2", "--out", run], "no checkpoint");
    }
}

// diffusharp captions: the caption file equals the library's captions line for line; --fit prints the table; bad
// input is one error line.
using DiffuSharp.Data;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class CaptionsCommandTests
{
    [Fact]
    public void Writes_one_caption_per_test_image_and_the_tercile_table()
    {
        using var dir = new TempDir();
        string outPath = Path.Combine(dir.Path, "captions.txt");
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["captions", "--split", "test", "--seed", "5", "--epoch", "2", "--out", outPath, "--fit"]);
        Assert.True(code == 0, stderr);
        var lines = File.ReadAllText(outPath).Split('\n');
        Assert.Equal(10001, lines.Length);                                   // 10,000 lines, each ended by '\n'
        Assert.Equal("", lines[^1]);
        var test = FashionMnist.Load(train: false);
        var expected = FashionCaptions.ForDataset(test, seed: 5, epoch: 2);
        Assert.Equal(expected, lines[..^1]);
        Assert.Contains("| ankle boot |", stdout);
        Assert.Contains($"10000 captions ({expected.Count(c => c.Length == 0)} empty) for the test split, seed 5, epoch 2", stdout);
    }

    [Fact]
    public void Bare_captions_are_drawn_as_train_latent_draws_them()
    {
        using var dir = new TempDir();
        string outPath = Path.Combine(dir.Path, "captions.txt");
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli(["captions", "--split", "test", "--seed", "5", "--bare-captions", "0.5", "--out", outPath]);
        Assert.True(code == 0, stderr);
        var lines = File.ReadAllText(outPath).Split('\n')[..^1];
        var test = FashionMnist.Load(train: false);
        Assert.Equal(FashionCaptions.ForDataset(test, seed: 5, options: new CaptionOptions(BareProbability: 0.5)), lines);
        Assert.NotEqual(FashionCaptions.ForDataset(test, seed: 5), lines);
    }

    [Theory]
    [InlineData(new[] { "captions", "--split", "test", "--out", "x.txt", "--bare-captions", "2" }, "must be in [0, 1], got 2")]
    [InlineData(new[] { "captions", "--split", "val", "--fit" }, "--split must be train or test")]
    [InlineData(new[] { "captions" }, "give --out FILE")]
    [InlineData(new[] { "captions", "--fit", "--data", "/nonexistent/fm" }, "/nonexistent/fm")]
    public void Bad_input_is_one_error_line(string[] args, string expected) => TrainSampleEndToEndTests.AssertOneLineError(args, expected);
}

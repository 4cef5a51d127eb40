// One option style: help shows kebab-case, every option also parses with underscores (improved-diffusion's
// spelling), sample's --batch is --batch-size (the old name kept); raw-argument checks of a command see one
// spelling; @FILE response files; --class takes Fashion-MNIST's class names.
using DiffuSharp.Cli;
using DiffuSharp.IO;
using DiffuSharp.Tests.Training;
using Xunit;
using static DiffuSharp.Tests.Cli.TrainSampleEndToEndTests;

namespace DiffuSharp.Tests.Cli;

[Collection(nameof(SerialCollection))]
public sealed class OptionStyleTests : IDisposable
{
    readonly string _dir = TrainingFixtures.TempFolder("options");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static (int Code, string Stdout, string Stderr) Call(string[] args) => TrainSampleEndToEndTests.Cli(args);

    [Theory]
    [InlineData("train"), InlineData("sample"), InlineData("eval"), InlineData("interpolate"), InlineData("invert"), InlineData("txt2img"), InlineData("train-classifier")]
    public void Help_shows_only_kebab_case_options(string command)
    {
        var (code, stdout, _) = Call([command, "--help"]);
        Assert.Equal(0, code);
        var options = System.Text.RegularExpressions.Regex.Matches(stdout, @"^  (--[a-z0-9_-]+)", System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(options);
        Assert.All(options, o => Assert.DoesNotContain("_", o));
    }

    [Fact]
    public void Train_help_names_improved_diffusions_flags_in_kebab_case()
    {
        var (_, stdout, _) = Call(["train", "--help"]);
        Assert.Contains("--batch-size", stdout);
        Assert.Contains("--num-channels", stdout);
        Assert.Contains("--save-interval", stdout);
        var (_, sample, _) = Call(["sample", "--help"]);
        Assert.Contains("--batch-size B", sample);
        Assert.Contains("--save-npy FILE", sample);
    }

    [Fact]
    public void Both_spellings_and_the_old_batch_name_parse_to_the_same_samples()
    {
        string model = CliModelFixture.TinyModelFolder(_dir);
        byte[] Run(params string[] extra)
        {
            string npy = Path.Combine(_dir, $"{Guid.NewGuid():N}.npy");
            var (code, _, err) = Call(["sample", "--model", model, "--n", "3", "--steps", "4", "--out", Path.Combine(_dir, "g.png"), .. extra.Select(e => e.Replace("NPY", npy))]);
            Assert.True(code == 0, err);
            return File.ReadAllBytes(npy);
        }
        var a = Run("--batch-size", "2", "--save-npy", "NPY");
        Assert.Equal(a, Run("--batch_size", "2", "--save_npy", "NPY"));
        Assert.Equal(a, Run("--batch", "2", "--save-npy=NPY"));
        Assert.Equal(a, Run("--batch=2", "--save_npy=NPY"));
        AssertOneLineError(["sample", "--model", model, "--batch", "2", "--batch-size", "3"], "--batch-size given twice");
        AssertOneLineError(["sample", "--model", model, "--batch_size", "x"], "--batch-size expects an integer");
        AssertOneLineError(["sample", "--model", model, "--save-npz", "x"], "did you mean --save-npy?");
    }

    [Fact]
    public void A_kebab_model_flag_is_refused_on_resume_as_the_underscore_one_is()
    {
        string run = Path.Combine(_dir, "run");
        Assert.Equal(0, Call(["train", "--steps", "1", .. TrainSafetyTests.Tiny(_dir, run)]).Code);
        // TrainCommand looks for model flags in its raw args: the parser's rewrite makes --num-channels visible there
        AssertOneLineError(["train", "--resume", "--steps", "2", "--num-channels", "64", "--out", run], "--num-channels cannot change a model on --resume");
        AssertOneLineError(["train", "--resume", "--steps", "2", "--batch-size", "2", "--out", run], "--batch-size");
    }

    [Fact]
    public void A_response_file_holds_arguments_with_quotes_and_comments()
    {
        string model = CliModelFixture.TinyModelFolder(_dir, classCond: true, numClasses: 10);
        string rsp = Path.Combine(_dir, "args.rsp");
        File.WriteAllLines(rsp, ["# the shipped garments", $"--model '{model}' --n 2", "--class \"ankle boot\" --steps 3", $"--save-npy {Path.Combine(_dir, "r.npy")}"]);
        var (code, _, err) = Call(["sample", "@" + rsp, "--out", Path.Combine(_dir, "r.png")]);
        Assert.True(code == 0, err);
        var (c2, _, e2) = Call(["sample", "--model", model, "--n", "2", "--class", "9", "--steps", "3", "--save-npy", Path.Combine(_dir, "n.npy"), "--out", Path.Combine(_dir, "n.png")]);
        Assert.True(c2 == 0, e2);
        Assert.Equal(File.ReadAllBytes(Path.Combine(_dir, "n.npy")), File.ReadAllBytes(Path.Combine(_dir, "r.npy")));
        AssertOneLineError(["sample", "@" + Path.Combine(_dir, "missing.rsp")], "response file not found");
        File.WriteAllText(rsp, "--class \"ankle boot");
        AssertOneLineError(["sample", "@" + rsp], "is not closed");
        File.WriteAllText(rsp, "--model x @other.rsp");
        AssertOneLineError(["sample", "@" + rsp], "names another response file (@other.rsp); they do not nest");
        AssertOneLineError(["sample", "--model", model, "--class", "@@boot"], "--class '@boot' is not a class");   // @@: a literal @
    }

    [Fact]
    public void Class_names_give_the_same_samples_as_their_labels()
    {
        string model = CliModelFixture.TinyModelFolder(_dir, classCond: true, numClasses: 10);
        float[] Run(string cls)
        {
            string npy = Path.Combine(_dir, $"{Guid.NewGuid():N}.npy");
            var (code, _, err) = Call(["sample", "--model", model, "--n", "2", "--steps", "3", "--class", cls, "--save-npy", npy, "--out", Path.Combine(_dir, "c.png")]);
            Assert.True(code == 0, err);
            return Npy.ReadFloat32(npy).Data;
        }
        Assert.Equal(Run("6"), Run("shirt"));
        Assert.Equal(Run("9"), Run("ankle boot"));
        Assert.Equal(Run("9"), Run("Ankle_Boot"));
        Assert.Equal(Run("0"), Run("t-shirt"));
        Assert.NotEqual(Run("6"), Run("0"));                          // the label matters, so the equalities above say something
        AssertOneLineError(["sample", "--model", model, "--class", "hat"], "--class 'hat' is not a class of the model; expected a label 0..9 or a class name: 0 t-shirt/top, 1 trouser");
        AssertOneLineError(["sample", "--model", model, "--class", "10"], "--class 10 is not a label of the model; expected 0..9");
        var png = CliModelFixture.PngFile(_dir, "a.png");
        var (ic, _, ie) = Call(["invert", "--model", model, "--image", png, "--steps", "3", "--class", "sneaker", "--out", Path.Combine(_dir, "i.png")]);
        Assert.True(ic == 0, ie);
        AssertOneLineError(["invert", "--model", model, "--image", png, "--class", "boot", "--out", Path.Combine(_dir, "i.png")], "ankle boot");
    }

    [Fact]
    public void A_model_with_other_than_ten_classes_takes_numbers_only()
    {
        string model = CliModelFixture.TinyModelFolder(_dir, classCond: true, numClasses: 4);
        AssertOneLineError(["sample", "--model", model, "--class", "shirt"], "the model's 4 classes have no names: pass a label 0..3");
    }
}

// sample --guidance and the train flags of classifier-free guidance through the command line: a null-label model
// samples guided (W = 1 equals no flag, another W differs), models without a null label are refused with one
// error line, and so are contradictory train flags.
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.NN;
using DiffuSharp.Tests.Training;
using Xunit;
using static DiffuSharp.Tests.Cli.TrainSampleEndToEndTests;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class SampleGuidanceTests
{
    /// <summary>A tiny class-conditional folder (4 classes) with a null label, every weight perturbed.</summary>
    static string NullLabelFolder(string dir)
    {
        var config = TrainingFixtures.TinyModel(classCond: true) with { NullClass = true, ClassDropoutProb = 0.1 };
        var model = new UNetModel(config.ToUNetConfig(), new Rng(12));
        var rng = new Rng(13);
        foreach (var (_, p) in model.NamedParameters())
        {
            var noise = new float[p.Count];
            rng.FillNormal(noise, 0f, 0.05f);
            var d = p.Data;
            for (int i = 0; i < d.Length; i++) d[i] += noise[i];
        }
        string folder = Path.Combine(dir, "model-null");
        ModelFolder.Save(folder, config, ModelFolder.Weights(model));
        return folder;
    }

    static float[] Sample(string dir, string model, params string[] extra)
    {
        string npy = Path.Combine(dir, $"s{Guid.NewGuid():N}.npy");
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli([.. new[] { "sample", "--model", model, "--n", "4", "--steps", "4", "--seed", "2",
            "--out", Path.Combine(dir, "g.png"), "--save-npy", npy }, .. extra]);
        Assert.True(code == 0, stderr);
        return Npy.ReadFloat32(npy).Data;
    }

    [Fact]
    public void Guidance_one_is_the_plain_sample_and_three_differs()
    {
        string dir = TrainingFixtures.TempFolder("guidance");
        try
        {
            string folder = NullLabelFolder(dir);
            var plain = Sample(dir, folder);
            Assert.Equal(plain, Sample(dir, folder, "--guidance", "1"));
            var guided = Sample(dir, folder, "--guidance", "3");
            Assert.True(plain.Zip(guided).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
            Assert.All(guided, v => Assert.InRange(v, -1f, 1f));
            Assert.Equal(guided, Sample(dir, folder, "--guidance", "3", "--batch", "3"));   // batching does not change samples
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Models_without_a_null_label_refuse_guidance()
    {
        string dir = TrainingFixtures.TempFolder("guidance-refuse");
        try
        {
            string cc = CliModelFixture.TinyModelFolder(dir, classCond: true), un = CliModelFixture.TinyModelFolder(dir);
            string png = Path.Combine(dir, "x.png");
            AssertOneLineError(["sample", "--model", cc, "--guidance", "3", "--out", png], "--guidance needs a model trained with a null label (train --class-dropout-prob)");
            AssertOneLineError(["sample", "--model", un, "--guidance", "3", "--out", png], "--guidance needs a class-conditional model");
            AssertOneLineError(["sample", "--model", NullLabelFolder(dir), "--guidance", "-1", "--out", png], "--guidance must be at least 0");
            AssertOneLineError(["eval", "--model", cc, "--guidance", "3", "--n", "0", "--nll-n", "0"], "eval: --guidance needs a model trained with a null label");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Contradictory_train_flags_are_one_error_line()
    {
        string dir = TrainingFixtures.TempFolder("guidance-train");
        try
        {
            string cc = CliModelFixture.TinyModelFolder(dir, classCond: true);
            AssertOneLineError(["train", "--preset", "tiny", "--class_dropout_prob", "0.1", "--out", dir], "--class-dropout-prob needs a class-conditional model");
            AssertOneLineError(["train", "--init_from", cc, "--num_channels", "64", "--out", dir], "--num-channels cannot change the network of --init-from");
            AssertOneLineError(["train", "--preset", "tiny", "--predict_v", "true", "--predict_xstart", "true", "--out", dir], "predict_v and predict_xstart are exclusive");
            AssertOneLineError(["train", "--init_from", Path.Combine(dir, "nope"), "--out", dir], "model folder not found");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

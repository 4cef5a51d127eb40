// sample and eval with --guidance and no --model draw from the shipped guidance-capable model (models/fashion-mnist-cfg,
// which has a null label) rather than refusing on models/fashion-mnist (which has none): the same bits as naming that
// folder, and the help says so.
using DiffuSharp.Cli;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.Tests.Training;
using Xunit;
using static DiffuSharp.Tests.Cli.TrainSampleEndToEndTests;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class GuidanceDefaultModelTests
{
    static string Shipped(string name) => Path.Combine(TestPaths.RepoRoot, "models", name);

    [Fact]
    public void The_guided_shipped_model_has_a_null_label_and_the_default_one_has_none()
    {
        Assert.NotNull(ModelFolder.LoadConfig(Shipped(ShippedModels.Guided)).NullLabel);
        Assert.Null(ModelFolder.LoadConfig(Shipped(ShippedModels.Default)).NullLabel);
    }

    [Fact]
    public void Sample_with_guidance_and_no_model_draws_from_the_guided_shipped_model()
    {
        string dir = TrainingFixtures.TempFolder("guided-default");
        try
        {
            float[] Draw(params string[] model)
            {
                string npy = Path.Combine(dir, $"s{Guid.NewGuid():N}.npy");
                var (code, _, stderr) = TrainSampleEndToEndTests.Cli([.. model, "--guidance", "3", "--class", "3", "--n", "2", "--steps", "2", "--seed", "4",
                    "--out", Path.Combine(dir, "g.png"), "--save-npy", npy]);
                Assert.True(code == 0, stderr);
                return Npy.ReadFloat32(npy).Data;
            }
            var implicitModel = Draw("sample");
            var named = Draw("sample", "--model", Shipped(ShippedModels.Guided));
            Assert.Equal(named, implicitModel);
            // and the default model is still refused when named: it has no null label
            AssertOneLineError(["sample", "--model", Shipped(ShippedModels.Default), "--guidance", "3", "--out", Path.Combine(dir, "x.png")],
                "has none (model.json: null_class is not true)");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Eval_with_guidance_and_no_model_evaluates_the_guided_shipped_model()
    {
        string dir = TrainingFixtures.TempFolder("guided-eval");
        try
        {
            string data = EvalCommandTests.IdxFolder(dir), clf = EvalCommandTests.RandomClassifier(dir);
            string Eval(params string[] model)
            {
                var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["eval", .. model, "--guidance", "3", "--data", data, "--classifier", clf,
                    "--n", "4", "--nll-n", "0", "--steps", "2", "--batch", "4", "--json"]);
                Assert.True(code == 0, stderr);
                // the metrics, without the rows that time the run
                return string.Join('\n', stdout.Split('\n').Where(l => !l.Contains("\"unit\": \"s\"", StringComparison.Ordinal)));
            }
            string named = Eval("--model", Shipped(ShippedModels.Guided));
            Assert.Contains("\"fd\"", named);
            Assert.Equal(named, Eval());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("sample")]
    [InlineData("eval")]
    public void The_help_names_the_guided_default(string command)
    {
        var (code, stdout, _) = TrainSampleEndToEndTests.Cli([command, "--help"]);
        Assert.Equal(0, code);
        var guidance = stdout.Split('\n').Single(l => l.TrimStart().StartsWith("--guidance", StringComparison.Ordinal));
        Assert.Contains("without --model, models/fashion-mnist-cfg", guidance);
    }
}

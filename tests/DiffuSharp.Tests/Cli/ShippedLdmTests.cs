// The shipped latent model, models/fashion-mnist-ldm: txt2img without --model draws from it (the same bits as naming
// the folder), its words steer it ("a dark t-shirt" comes out darker than "a light t-shirt" from the same latents), and
// its ControlNets, named by their subfolders, make the output follow the control image: the silhouette of the output
// covers the control mask far better than without the ControlNet; eval-controlnet without folders scores it with its
// own two ControlNets. Short runs (8 steps, 32×32), so each takes seconds.
using DiffuSharp.Cli;
using DiffuSharp.Evaluation;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Tests.Training;
using Xunit;
using static DiffuSharp.Tests.Cli.SdCommandsTests;

namespace DiffuSharp.Tests.Cli;

public sealed class ShippedLdmTests
{
    static readonly string Model = Path.Combine(TestPaths.RepoRoot, "models", ShippedModels.TextToImage);
    static readonly string Controls = Path.Combine(TestPaths.RepoRoot, "docs", "control");

    /// <summary>Runs txt2img with 8 steps of the folder's scheduler at guidance 3; returns the images (N, 1, 32, 32) in [-1, 1].</summary>
    static (float[] Images, string Png) Draw(string dir, params string[] args)
    {
        string npy = Path.Combine(dir, $"{Guid.NewGuid():N}.npy"), png = Path.ChangeExtension(npy, ".png");
        var (code, _, err) = Run(["txt2img", .. args, "--steps", "8", "--guidance", "3", "--out", png, "--save-npy", npy]);
        Assert.True(code == 0, err);
        return (Npy.ReadFloat32(npy).Data, png);
    }

    [Fact]
    public void Txt2img_without_a_model_draws_from_the_shipped_latent_model()
    {
        string dir = TrainingFixtures.TempFolder("ldm-default");
        try
        {
            var (implicitModel, png) = Draw(dir, "--prompt", "a sneaker", "--seed", "3");
            var (named, _) = Draw(dir, "--model", Model, "--prompt", "a sneaker", "--seed", "3");
            Assert.Equal(named, implicitModel);
            Assert.Equal(32 * 32, implicitModel.Length);
            Assert.Contains("Model: fashion-mnist-ldm", Parameters(png));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Dark_and_light_are_obeyed_from_the_same_latents()
    {
        string dir = TrainingFixtures.TempFolder("ldm-words");
        try
        {
            const int n = 4, len = 32 * 32;
            var (dark, _) = Draw(dir, "--model", Model, "--prompt", "a dark t-shirt", "--n", $"{n}", "--seed", "1");
            var (light, _) = Draw(dir, "--model", Model, "--prompt", "a light t-shirt", "--n", $"{n}", "--seed", "1");
            for (int i = 0; i < n; i++)
            {
                double d = dark.AsSpan(i * len, len).ToArray().Average(), l = light.AsSpan(i * len, len).ToArray().Average();
                Assert.True(d < l - 0.05, $"image {i}: mean of 'a dark t-shirt' {d:F3}, of 'a light t-shirt' {l:F3}");
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void The_silhouette_controlnet_named_by_its_subfolder_makes_the_output_follow_the_mask()
    {
        string dir = TrainingFixtures.TempFolder("ldm-control");
        try
        {
            var control = Png.Read(Path.Combine(Controls, "pullover-silhouette.png"));
            var mask = control.Pixels.Select(p => p > 127).ToArray();
            double Iou(float[] image) => ControlMetrics.Iou(Silhouette.Mask(image.Select(v => (v + 1) / 2).ToArray(), 32, 32), mask);

            // "a dress" asked for, a pullover's mask given: the ControlNet wins over the words
            var (steered, png) = Draw(dir, "--model", Model, "--prompt", "a dress", "--seed", "2",
                "--controlnet", "silhouette", "--control-image", Path.Combine(Controls, "pullover-silhouette.png"));
            var (free, _) = Draw(dir, "--model", Model, "--prompt", "a dress", "--seed", "2");
            double withNet = Iou(steered), without = Iou(free);
            Assert.True(withNet > 0.8 && withNet > without + 0.2, $"silhouette IoU with the ControlNet {withNet:F3}, without {without:F3}");
            Assert.Contains("Model: controlnet-silhouette", Parameters(png));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Eval_controlnet_without_folders_scores_the_shipped_pipeline_with_its_own_two_controlnets()
    {
        string dir = TrainingFixtures.TempFolder("ldm-evalcn");
        try
        {
            string data = EvalCommandTests.IdxFolder(dir, count: 4);
            string[] common = ["--data", data, "--n", "2", "--steps", "2", "--json"];
            var (code, implicitFolders, err) = Run(["eval-controlnet", .. common]);
            Assert.True(code == 0, err);
            var (named, namedOut, namedErr) = Run(["eval-controlnet", "--pipeline", Model, "--edges", Path.Combine(Model, "controlnet-edges"),
                "--silhouette", Path.Combine(Model, "controlnet-silhouette"), .. common]);
            Assert.True(named == 0, namedErr);
            Assert.Equal(namedOut, implicitFolders);
            Assert.Contains("edges", implicitFolders);
            Assert.Contains("silhouette", implicitFolders);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Eval_vae_without_a_folder_scores_the_shipped_vae()
    {
        string dir = TrainingFixtures.TempFolder("ldm-evalvae");
        try
        {
            string data = EvalCommandTests.IdxFolder(dir, count: 4);
            string[] common = ["--data", data, "--n", "4", "--fd-n", "0"];
            var (code, implicitFolder, err) = Run(["eval-vae", .. common]);
            Assert.True(code == 0, err);
            var (named, namedOut, namedErr) = Run(["eval-vae", "--vae", Path.Combine(Model, "vae"), .. common]);
            Assert.True(named == 0, namedErr);
            Assert.Equal(namedOut, implicitFolder);
            Assert.Contains("psnr_mean_per_image_db", implicitFolder);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

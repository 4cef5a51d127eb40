// Pipeline folders as diffusers 0.27.2 saves them (Fixtures/diffusers/pipelines/tiny_sd, tiny_sd_multicontrolnet's
// model_index.json): components, [null, null] entries, settings, MultiControlNet's controlnet_N folders; every missing
// folder or file named. Then the text side of the pipeline run sd_txt2img: the folder's tokenizer gives the recorded
// prompt ids and its text encoder the recorded prompt embeddings.
using DiffuSharp.IO;
using DiffuSharp.NN.Clip;
using DiffuSharp.Pipelines;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Text;
using Xunit;

namespace DiffuSharp.Tests.Pipelines;

public class ModelIndexTests
{
    static string Dir => Path.Combine(TestPaths.Diffusers, "pipelines");
    static string TinySd => Path.Combine(Dir, "tiny_sd");

    /// <summary>A writable copy of tiny_sd.</summary>
    static string Copy(TempDir dir)
    {
        foreach (var f in Directory.GetFiles(TinySd, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(dir.Path, Path.GetRelativePath(TinySd, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        return dir.Path;
    }

    [Fact]
    public void Reads_the_components_of_a_StableDiffusionPipeline_folder()
    {
        var index = ModelIndex.Load(TinySd);
        Assert.Equal("StableDiffusionPipeline", index.ClassName);
        Assert.Equal("0.27.2", index.DiffusersVersion);
        Assert.Equal(["scheduler", "text_encoder", "tokenizer", "unet", "vae"], index.Components.Keys.Order());
        Assert.Equal(["feature_extractor", "image_encoder", "safety_checker"], index.Absent.Order());
        Assert.False(index.Settings["requires_safety_checker"].GetBoolean());
        Assert.Equal(("transformers", "CLIPTextModel"), (index.Components["text_encoder"].Library, index.Components["text_encoder"].ClassName));
        Assert.Equal("PNDMScheduler", index.Components["scheduler"].ClassName);
        Assert.Empty(index.ControlNets);
        foreach (var name in index.Components.Keys) index.Require(name);
        Assert.EndsWith(Path.Combine("scheduler", "scheduler_config.json"), index.Components["scheduler"].ConfigPath);
        Assert.Equal(304, index.Weights("unet").Names.Count);
        Assert.Equal(36, index.Weights("text_encoder").Names.Count);
    }

    [Fact]
    public void A_MultiControlNet_is_its_controlnet_N_folders_in_order()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Dir, "tiny_sd_multicontrolnet", "model_index.json"), Path.Combine(dir.Path, "model_index.json"));
        foreach (var sub in new[] { "controlnet_2", "controlnet", "controlnet_1", "controlnet_4" }) Directory.CreateDirectory(Path.Combine(dir.Path, sub));
        var index = ModelIndex.Load(dir.Path);
        Assert.Equal("StableDiffusionControlNetPipeline", index.ClassName);
        Assert.Equal(["controlnet", "controlnet_1", "controlnet_2"], index.ControlNets.Select(c => c.Name));   // stops at the first gap
        Assert.All(index.ControlNets, c => Assert.Equal("ControlNetModel", c.ClassName));

        Directory.Delete(Path.Combine(dir.Path, "controlnet"));
        var e = Assert.Throws<DirectoryNotFoundException>(() => ModelIndex.Load(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, "controlnet"), e.Message);
    }

    [Fact]
    public void Missing_folders_and_files_are_named()
    {
        using var dir = new TempDir();
        string root = Copy(dir);
        Directory.Delete(Path.Combine(root, "vae"), recursive: true);
        var index = ModelIndex.Load(root);
        var e1 = Assert.Throws<DirectoryNotFoundException>(() => index.Require("vae"));
        Assert.Contains(Path.Combine(root, "vae"), e1.Message);

        File.Delete(Path.Combine(root, "unet", "diffusion_pytorch_model.safetensors"));
        var e2 = Assert.Throws<FileNotFoundException>(() => index.Weights("unet"));
        Assert.Contains(Path.Combine(root, "unet", "diffusion_pytorch_model.safetensors"), e2.Message);

        File.WriteAllBytes(Path.Combine(root, "unet", "diffusion_pytorch_model.bin"), [0x80, 0x02]);
        var e3 = Assert.Throws<InvalidDataException>(() => index.Weights("unet"));
        Assert.Contains("diffusion_pytorch_model.bin", e3.Message);
        Assert.Contains("convert it to .safetensors", e3.Message);

        File.Delete(Path.Combine(root, "tokenizer", "merges.txt"));
        var e4 = Assert.Throws<FileNotFoundException>(() => index.Require("tokenizer"));
        Assert.Contains(Path.Combine(root, "tokenizer", "merges.txt"), e4.Message);

        File.Delete(Path.Combine(root, "text_encoder", "config.json"));
        var e5 = Assert.Throws<FileNotFoundException>(() => index.Require("text_encoder"));
        Assert.Contains(Path.Combine(root, "text_encoder", "config.json"), e5.Message);

        var e6 = Assert.Throws<InvalidDataException>(() => index.Require("safety_checker"));
        Assert.Contains("[null, null]", e6.Message);
        var e7 = Assert.Throws<InvalidDataException>(() => index.Require("controlnet"));
        Assert.Contains("no component 'controlnet'", e7.Message);

        File.Delete(Path.Combine(root, "model_index.json"));
        var e8 = Assert.Throws<FileNotFoundException>(() => ModelIndex.Load(root));
        Assert.Contains("model_index.json", e8.Message);
    }

    [Theory]
    [InlineData("\"unet\": [\n    \"diffusers\",\n    \"UNet2DConditionModel\"\n  ]", "\"unet\": [\"diffusers\"]", "component 'unet' must be [library, class]")]
    [InlineData("\"_class_name\": \"StableDiffusionPipeline\",", "", "_class_name")]
    public void A_malformed_model_index_is_an_error_naming_the_file(string from, string to, string expected)
    {
        using var dir = new TempDir();
        string root = Copy(dir);
        string path = Path.Combine(root, "model_index.json");
        string json = File.ReadAllText(path);
        Assert.Contains(from, json);
        File.WriteAllText(path, json.Replace(from, to));
        var e = Assert.Throws<InvalidDataException>(() => ModelIndex.Load(root));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tokenizer_and_text_encoder_reproduce_the_txt2img_prompt_embeddings(bool singleFile)
    {
        // from the folder, or from the single-file checkpoint with the folder's configs and tokenizer
        IPipelineSource source = singleFile
            ? SingleFilePipeline.Open(Path.Combine(Dir, "tiny_sd_single_file.safetensors"), TinySd)
            : ModelIndex.Load(TinySd);
        var tokenizer = ClipTokenizer.FromFolder(source.Index.Require("tokenizer").Folder);
        var encoder = ClipTextModel.FromSource(ClipTextConfig.Load(source.ConfigPath("text_encoder")), source.Weights("text_encoder"));
        if (singleFile) Assert.Contains("tiny_sd_single_file.safetensors (text_encoder)", source.Weights("text_encoder").SourceName);
        var run = SafeTensorsFile.Open(Path.Combine(Dir, "sd_txt2img.safetensors"));
        foreach (var (prompt, which) in new[] { ("a photo of a cat", "prompt"), ("blurry", "negative_prompt") })
        {
            var ids = tokenizer.Encode(prompt).InputIds;
            Assert.Equal(run.ReadInt64($"input.{which}_ids").Select(i => (int)i).ToArray(), ids);
            float[] embeds;
            using (Tensor.NoGrad()) embeds = encoder.Forward(ids, 1).LastHiddenState.ToArray();
            foreach (var reference in new[] { $"intermediate.{which}_embeds", $"output_f64.{which}_embeds" })
            {
                var e = run.ReadFloat64(reference);
                double num = 0, den = 0;
                for (int i = 0; i < e.Length; i++) { num += (embeds[i] - e[i]) * (embeds[i] - e[i]); den += e[i] * e[i]; }
                Assert.True(Math.Sqrt(num / den) < 1e-5, $"{reference}: relative L2 {Math.Sqrt(num / den):G3}");
            }
        }
    }
}

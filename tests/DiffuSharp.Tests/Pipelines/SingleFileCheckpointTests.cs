// Single-file (CompVis) checkpoints against the folder they were converted from (Fixtures/diffusers/pipelines:
// tiny_sd_single_file.safetensors, written by diffusers 0.27.2's convert_diffusers_to_original_stable_diffusion.py
// from tiny_sd/): the name mapping equals the recorded one for all 584 tensors and every tensor reads back equal
// to the folder's, bit for bit, the VAE's (C, C, 1, 1) attention weights as (C, C). Then the extras real files
// carry, SD 2.x's OpenCLIP text encoder, and the errors.
using System.Text.Json;
using DiffuSharp.IO;
using DiffuSharp.NN;
using DiffuSharp.NN.Clip;
using DiffuSharp.Pipelines;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Pipelines;

public class SingleFileCheckpointTests
{
    static string Dir => Path.Combine(TestPaths.Diffusers, "pipelines");
    static string TinySd => Path.Combine(Dir, "tiny_sd");
    static string SingleFile => Path.Combine(Dir, "tiny_sd_single_file.safetensors");

    static SingleFileLayout Layout() => SingleFileLayout.FromConfigs(Path.Combine(TinySd, "unet", "config.json"),
        Path.Combine(TinySd, "vae", "config.json"), Path.Combine(TinySd, "text_encoder", "config.json"));

    static string WeightsOf(string component) => Path.Combine(TinySd, component, component == "text_encoder" ? "model.safetensors" : "diffusion_pytorch_model.safetensors");

    [Fact]
    public void Layout_is_read_from_the_component_configs()
    {
        var layout = Layout();
        Assert.Equal(2, layout.UnetLayersPerBlock);
        Assert.Equal([false, true], layout.UnetUpBlockHasAttention);
        Assert.Equal(2, layout.UnetDownBlockCount);
        Assert.Equal(4, layout.VaeLevels);
        Assert.Equal(2, layout.TextLayers);
    }

    [Fact]
    public void Mapping_equals_the_recorded_one_for_every_tensor()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "tiny_sd_single_file.json")));
        var expected = doc.RootElement.GetProperty("mapping").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        Assert.Equal(584, expected.Count);
        var ckpt = SingleFileCheckpoint.Open(SingleFile, Layout());
        var actual = ckpt.Mapping;
        Assert.Equal(expected.Count, actual.Count);
        foreach (var (name, key) in expected)
        {
            Assert.True(actual.TryGetValue(name, out var mine), $"{name} is not mapped");
            Assert.True(key == mine, $"{name}: expected {key}, mapped from {mine}");
        }
        Assert.Empty(ckpt.Unrecognized);
        Assert.Empty(ckpt.Ignored);
    }

    [Theory, InlineData("unet"), InlineData("vae"), InlineData("text_encoder")]
    public void Every_tensor_reads_back_equal_to_the_folder(string component)
    {
        var folder = SafeTensorsFile.Open(WeightsOf(component));
        var source = SingleFileCheckpoint.Open(SingleFile, Layout()).Component(component);
        Assert.Equal(folder.Names.OrderBy(n => n, StringComparer.Ordinal), source.Names.OrderBy(n => n, StringComparer.Ordinal));
        int reshaped = 0;
        foreach (var name in folder.Names)
        {
            var shape = folder.Info(name).Shape.Select(d => (int)d).ToArray();
            Assert.Equal(shape, source.Shape(name));
            var a = folder.ReadFloat32(name);
            var b = source.ReadFloat32(name);
            Assert.True(a.AsSpan().SequenceEqual(b), $"{component}/{name} differs");
            if (component == "vae" && name.Contains("mid_block.attentions.0.to_") && name.EndsWith(".weight")) reshaped++;
        }
        if (component == "vae") Assert.Equal(8, reshaped);             // encoder and decoder: to_q, to_k, to_v, to_out.0
    }

    [Fact]
    public void The_text_encoder_loads_from_the_single_file_and_gives_the_folders_output()
    {
        var config = ClipTextConfig.Load(Path.Combine(TinySd, "text_encoder", "config.json"));
        var fromFile = ClipTextModel.FromSource(config, SingleFileCheckpoint.Open(SingleFile, Layout()).Component("text_encoder"));
        var fromFolder = ClipTextModel.FromFolder(Path.Combine(TinySd, "text_encoder"));
        using var _ = Tensor.NoGrad();
        int[] ids = [49406, 320, 1125, 539, 320, 2368, 49407, 49407];
        Assert.Equal(fromFolder.Forward(ids, 1).LastHiddenState.ToArray(), fromFile.Forward(ids, 1).LastHiddenState.ToArray());
    }

    /// <summary>The fixture's tensors plus extra ones, written to a temporary single file.</summary>
    static string WithExtras(TempDir dir, params (string Name, long[] Shape)[] extra)
    {
        var src = SafeTensorsFile.Open(SingleFile);
        var tensors = src.Names.Select(n => (n, "F32", src.Info(n).Shape, src.ReadRaw(n)))
            .Concat(extra.Select(e => (e.Name, "F32", e.Shape, new byte[4 * e.Shape.Aggregate(1L, (a, b) => a * b)])));
        string path = Path.Combine(dir.Path, "model.safetensors");
        SafeTensorsWriter.WriteMixed(path, tensors);
        return path;
    }

    [Fact]
    public void Extras_of_real_checkpoints_are_ignored_and_unknown_keys_listed()
    {
        using var dir = new TempDir();
        string path = WithExtras(dir, ("cond_stage_model.transformer.text_model.embeddings.position_ids", [1, 77]), ("betas", [1000]),
            ("alphas_cumprod", [1000]), ("posterior_mean_coef2", [1000]), ("model_ema.decay", []), ("model_ema.num_updates", []),
            ("model_ema.diffusion_modelinput_blocks00weight", [16, 4, 3, 3]), ("lora_te_text_model_x.alpha", []));
        var ckpt = SingleFileCheckpoint.Open(path, Layout());
        Assert.Equal(7, ckpt.Ignored.Count);
        Assert.Equal(["lora_te_text_model_x.alpha"], ckpt.Unrecognized);
        Assert.Equal(584, ckpt.Mapping.Count);
        var config = ClipTextConfig.Load(Path.Combine(TinySd, "text_encoder", "config.json"));
        ClipTextModel.FromSource(config, ckpt.Component("text_encoder"));
    }

    [Theory]
    [InlineData("model.diffusion_model.input_blocks.9.0.in_layers.0.weight", "input_blocks.9")]
    [InlineData("model.diffusion_model.label_emb.0.0.weight", "label_emb")]
    [InlineData("first_stage_model.decoder.up.4.block.0.conv1.weight", "decoder.up.4")]
    public void A_component_key_that_fits_no_rule_is_an_error_naming_it(string key, string expected)
    {
        using var dir = new TempDir();
        string path = WithExtras(dir, (key, [4]));
        var e = Assert.Throws<InvalidDataException>(() => SingleFileCheckpoint.Open(path, Layout()));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Theory, InlineData("sd15.ckpt"), InlineData("model.pt"), InlineData("pytorch_model.bin")]
    public void Pickles_are_refused_with_a_hint_to_convert(string file)
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, file);
        File.WriteAllBytes(path, [0x80, 0x02, 0x7d]);
        var e = Assert.Throws<InvalidDataException>(() => SingleFileCheckpoint.Open(path, Layout()));
        Assert.Contains(file, e.Message);
        Assert.Contains("convert it to .safetensors", e.Message);
    }

    [Fact]
    public void A_missing_component_is_named()
    {
        using var dir = new TempDir();
        var src = SafeTensorsFile.Open(SingleFile);
        string path = Path.Combine(dir.Path, "unet_only.safetensors");
        SafeTensorsWriter.WriteMixed(path, src.Names.Where(n => n.StartsWith("model.diffusion_model.")).Select(n => (n, "F32", src.Info(n).Shape, src.ReadRaw(n))));
        var e = Assert.Throws<InvalidDataException>(() => SingleFileCheckpoint.Open(path, Layout()).Component("vae"));
        Assert.Contains("no vae weights", e.Message);
        Assert.Contains("first_stage_model.", e.Message);
    }

    [Fact]
    public void A_standalone_VAE_file_reads_as_the_folders_VAE()
    {
        // vae-ft-mse-style files: the first_stage_model. keys without their prefix, sometimes with the discriminator
        using var dir = new TempDir();
        var src = SafeTensorsFile.Open(SingleFile);
        string path = Path.Combine(dir.Path, "vae.safetensors");
        SafeTensorsWriter.WriteMixed(path, src.Names.Where(n => n.StartsWith(CompVisNames.VaePrefix))
            .Select(n => (n[CompVisNames.VaePrefix.Length..], "F32", src.Info(n).Shape, src.ReadRaw(n)))
            .Append(("loss.discriminator.main.0.weight", "F32", [2], new byte[8])));
        var ckpt = SingleFileCheckpoint.OpenVae(path, Layout());
        Assert.Equal(["vae"], ckpt.Components);
        Assert.Equal(["loss.discriminator.main.0.weight"], ckpt.Ignored);
        var folder = SafeTensorsFile.Open(WeightsOf("vae"));
        var vae = ckpt.Component("vae");
        Assert.Equal(folder.Names.Order(), vae.Names.Order());
        foreach (var name in folder.Names)
            Assert.True(folder.ReadFloat32(name).AsSpan().SequenceEqual(vae.ReadFloat32(name)) && folder.Info(name).Shape.Select(d => (int)d).SequenceEqual(vae.Shape(name)), name);
    }

    [Fact]
    public void An_OpenCLIP_text_encoder_of_SD2_maps_to_CLIPTextModel()
    {
        // SD 2.x single files hold OpenCLIP's text tower under cond_stage_model.model.: q, k, v stacked in in_proj, one
        // more layer than diffusers' text encoder uses, and the projection. Built here from the clip_text_gelu folder by
        // OpenCLIP's names (open_clip/transformer.py), it must load back into the same CLIPTextModel.
        string folder = Path.Combine(TestPaths.Diffusers, "clip_text_gelu");
        var config = ClipTextConfig.Load(Path.Combine(folder, "config.json"));
        var w = SafeTensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        var tensors = new List<(string, int[], float[])>();
        void Add(string name, string from) => tensors.Add((name, w.Info(from).Shape.Select(d => (int)d).ToArray(), w.ReadFloat32(from)));
        const string p = "cond_stage_model.model.";
        Add(p + "token_embedding.weight", "text_model.embeddings.token_embedding.weight");
        Add(p + "positional_embedding", "text_model.embeddings.position_embedding.weight");
        Add(p + "ln_final.weight", "text_model.final_layer_norm.weight");
        Add(p + "ln_final.bias", "text_model.final_layer_norm.bias");
        int c = config.HiddenSize;
        for (int i = 0; i <= config.NumHiddenLayers; i++)                   // one layer more than the config has
        {
            int src = Math.Min(i, config.NumHiddenLayers - 1);
            string at = $"text_model.encoder.layers.{src}.", to = $"{p}transformer.resblocks.{i}.";
            float[] Stack(string kind) => [.. w.ReadFloat32(at + $"self_attn.q_proj.{kind}"), .. w.ReadFloat32(at + $"self_attn.k_proj.{kind}"), .. w.ReadFloat32(at + $"self_attn.v_proj.{kind}")];
            tensors.Add((to + "attn.in_proj_weight", [3 * c, c], Stack("weight")));
            tensors.Add((to + "attn.in_proj_bias", [3 * c], Stack("bias")));
            foreach (var kind in new[] { "weight", "bias" })
            {
                Add(to + "attn.out_proj." + kind, at + "self_attn.out_proj." + kind);
                Add(to + "ln_1." + kind, at + "layer_norm1." + kind);
                Add(to + "ln_2." + kind, at + "layer_norm2." + kind);
                Add(to + "mlp.c_fc." + kind, at + "mlp.fc1." + kind);
                Add(to + "mlp.c_proj." + kind, at + "mlp.fc2." + kind);
            }
        }
        tensors.Add((p + "text_projection", [c, 16], new float[c * 16]));
        tensors.Add((p + "logit_scale", [], [4.6f]));
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "sd2.safetensors");
        SafeTensorsWriter.Write(path, tensors);

        var layout = SingleFileLayout.StableDiffusion(textLayers: config.NumHiddenLayers);
        var model = ClipTextModel.FromSource(config, SingleFileCheckpoint.Open(path, layout).Component("text_encoder"));
        foreach (var (name, param) in model.NamedParameters())
            Assert.True(w.ReadFloat32(name).AsSpan().SequenceEqual(param.ToArray()), $"{name} differs");
    }
}

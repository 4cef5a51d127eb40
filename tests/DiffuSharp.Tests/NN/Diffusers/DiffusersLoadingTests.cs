// Building diffusers components from folders: config.json errors name the key, the value and the file; weight
// files with a missing, wrongly shaped or extra tensor are refused naming the tensor and the file; a pickle is
// refused; F16 and BF16 weights load as float32 (each value exactly the rounded one).
using System.Text.Json.Nodes;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using Xunit;

namespace DiffuSharp.Tests.NN.Diffusers;

public sealed class DiffusersLoadingTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "diffusers-loading-" + Guid.NewGuid().ToString("N"));

    public DiffusersLoadingTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(TestPaths.Diffusers, name);

    /// <summary>A copy of a fixture folder whose config.json is edited by <paramref name="edit"/>.</summary>
    string CopyWithConfig(string fixture, Action<JsonObject> edit)
    {
        string folder = Path.Combine(_dir, fixture + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(Fixture(fixture))) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        edit(json);
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        return folder;
    }

    static void AssertMessage(Exception e, params string[] parts)
    {
        foreach (var p in parts) Assert.Contains(p, e.Message);
    }

    [Fact]
    public void Unknown_config_key_is_an_error_naming_key_and_file()
    {
        var folder = CopyWithConfig("unet2d_condition", j => j["use_magic"] = true);
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet2DCondition(folder));
        AssertMessage(e, "use_magic", "config.json", "unknown key");
    }

    [Fact]
    public void Unsupported_block_type_is_an_error_naming_key_value_and_file()
    {
        var folder = CopyWithConfig("unet2d_condition", j => j["down_block_types"] = new JsonArray("SimpleCrossAttnDownBlock2D", "DownBlock2D"));
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet2DCondition(folder));
        AssertMessage(e, "down_block_types", "SimpleCrossAttnDownBlock2D", "not supported", "config.json");
    }

    [Theory]
    [InlineData("unet2d_condition", "addition_embed_type", "\"text_time\"", "text_time")]
    [InlineData("unet2d_condition", "resnet_time_scale_shift", "\"ada_group\"", "ada_group")]
    [InlineData("unet2d_condition", "mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"", "UNetMidBlock2DSimpleCrossAttn")]
    [InlineData("unet2d_condition", "act_fn", "\"mish\"", "mish")]
    [InlineData("unet2d_condition", "num_attention_heads", "8", "8")]
    [InlineData("unet2d", "time_embedding_type", "\"fourier\"", "fourier")]
    [InlineData("unet2d", "up_block_types", "[\"AttnSkipUpBlock2D\", \"UpBlock2D\"]", "AttnSkipUpBlock2D")]
    [InlineData("autoencoder_kl", "up_block_types", "[\"UpDecoderBlock2D\", \"AttnUpDecoderBlock2D\"]", "AttnUpDecoderBlock2D")]
    [InlineData("controlnet", "controlnet_conditioning_channel_order", "\"rbg\"", "rbg")]
    [InlineData("controlnet", "encoder_hid_dim", "16", "16")]
    [InlineData("autoencoder_kl", "use_quant_conv", "false", "false")]
    public void Unsupported_config_value_is_an_error_naming_key_value_and_file(string fixture, string key, string valueJson, string shown)
    {
        var folder = CopyWithConfig(fixture, j => j[key] = JsonNode.Parse(valueJson));
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.Load(folder));
        AssertMessage(e, $"\"{key}\"", shown, "config.json");
    }

    [Fact]
    public void Keys_newer_diffusers_write_are_accepted_at_their_027_meaning()
    {
        var folder = CopyWithConfig("autoencoder_kl", j =>
        {
            j["mid_block_add_attention"] = true;
            j["use_quant_conv"] = true;
            j["use_post_quant_conv"] = true;
            j["shift_factor"] = null;
        });
        Assert.IsType<AutoencoderKL>(ComponentLoader.Load(folder));
    }

    [Fact]
    public void Sample_size_may_be_height_and_width()
    {
        var folder = CopyWithConfig("unet2d_condition", j => j["sample_size"] = new JsonArray(32, 48));
        Assert.Equal(32, ComponentLoader.LoadUNet2DCondition(folder).Config.SampleSize);
    }

    [Fact]
    public void Wrong_class_name_is_an_error()
    {
        var folder = CopyWithConfig("autoencoder_kl", j => j["_class_name"] = "VQModel");
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.Load(folder));
        AssertMessage(e, "VQModel", "config.json");
    }

    /// <summary>A copy of the unet2d_condition fixture folder whose weights are rewritten by <paramref name="edit"/>.</summary>
    string CopyWithWeights(Func<List<(string Name, string DType, long[] Shape, byte[] Raw)>, IEnumerable<(string, string, long[], byte[])>> edit)
    {
        var folder = CopyWithConfig("unet2d_condition", _ => { });
        string path = Path.Combine(folder, "diffusion_pytorch_model.safetensors");
        var file = SafeTensorsFile.Open(path);
        var tensors = file.Names.Select(n => (n, file.Info(n).DType, file.Info(n).Shape, file.ReadRaw(n))).ToList();
        File.Delete(path);
        SafeTensorsWriter.WriteMixed(path, edit(tensors));
        return folder;
    }

    [Fact]
    public void Missing_tensor_is_an_error_naming_tensor_and_file()
    {
        var folder = CopyWithWeights(ts => ts.Where(t => t.Name != "mid_block.attentions.0.proj_in.weight"));
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet2DCondition(folder));
        AssertMessage(e, "mid_block.attentions.0.proj_in.weight", "diffusion_pytorch_model.safetensors", "missing");
    }

    [Fact]
    public void Wrongly_shaped_tensor_is_an_error_naming_tensor_shapes_and_file()
    {
        var folder = CopyWithWeights(ts => ts.Select(t => t.Name == "conv_in.bias" ? (t.Name, t.DType, new long[] { t.Shape[0] / 2, 2 }, t.Raw) : t));
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet2DCondition(folder));
        AssertMessage(e, "conv_in.bias", "(16, 2)", "(32)", "diffusion_pytorch_model.safetensors");
    }

    [Fact]
    public void Extra_tensor_is_an_error_naming_it()
    {
        var folder = CopyWithWeights(ts => ts.Append(("add_embedding.linear_1.weight", "F32", new long[] { 2 }, new byte[8])));
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet2DCondition(folder));
        AssertMessage(e, "add_embedding.linear_1.weight", "diffusion_pytorch_model.safetensors");
    }

    [Fact]
    public void Truncated_weights_file_is_an_error_naming_the_file()
    {
        var folder = CopyWithConfig("unet2d_condition", _ => { });
        string path = Path.Combine(folder, "diffusion_pytorch_model.safetensors");
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(f.Length - 4);
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet2DCondition(folder));
        AssertMessage(e, "diffusion_pytorch_model.safetensors");
    }

    [Fact]
    public void Pickle_weights_are_refused_with_a_hint_to_convert()
    {
        var folder = CopyWithConfig("unet2d_condition", _ => { });
        File.Move(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), Path.Combine(folder, "diffusion_pytorch_model.bin"));
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet2DCondition(folder));
        AssertMessage(e, "diffusion_pytorch_model.bin", "safetensors");
    }

    [Theory, InlineData("F16"), InlineData("BF16")]
    public void Half_precision_weights_load_as_their_float32_values(string dtype)
    {
        static byte[] Convert(string dtype, float[] values)
        {
            var raw = new byte[values.Length * 2];
            for (int i = 0; i < values.Length; i++)
            {
                ushort bits = dtype == "F16"
                    ? BitConverter.HalfToUInt16Bits((Half)values[i])
                    : (ushort)((BitConverter.SingleToUInt32Bits(values[i]) + 0x7FFF + ((BitConverter.SingleToUInt32Bits(values[i]) >> 16) & 1)) >> 16);
                BitConverter.TryWriteBytes(raw.AsSpan(2 * i), bits);
            }
            return raw;
        }
        var reference = SafeTensorsFile.Open(Path.Combine(Fixture("unet2d_condition"), "diffusion_pytorch_model.safetensors"));
        var folder = CopyWithWeights(ts => ts.Select(t => (t.Name, dtype, t.Shape, Convert(dtype, reference.ReadFloat32(t.Name)))));
        var model = ComponentLoader.LoadUNet2DCondition(folder);
        foreach (var (name, p) in model.NamedParameters())
        {
            var expected = reference.ReadFloat32(name).Select(v => dtype == "F16" ? (float)(Half)v : BitConverter.UInt32BitsToSingle((uint)BitConverter.ToUInt16(Convert("BF16", [v])) << 16)).ToArray();
            Assert.Equal(expected, p.ToArray());
        }
    }
}

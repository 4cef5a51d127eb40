// CLIPTextModel against transformers 4.39 (Fixtures/diffusers/clip_text, quick_gelu; clip_text_gelu, gelu): the folder
// loads as transformers saved it, and last_hidden_state, pooler_output and every hidden state of the recorded call
// match within 1e-4 relative L2 (float32 and float64 references). Then F16/BF16 weights, the pooling rules, and
// the errors: unknown config key, unsupported hidden_act, missing and wrongly shaped tensors, a pickle.
using DiffuSharp.IO;
using DiffuSharp.NN;
using DiffuSharp.NN.Clip;
using DiffuSharp.Tests.Imaging;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.NN;

public class ClipTextModelTests(ITestOutputHelper output)
{
    static string Folder(string name) => Path.Combine(TestPaths.Diffusers, name);

    /// <summary>‖a − e‖₂ / ‖e‖₂ in double.</summary>
    static double RelL2(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++) { double d = actual[i] - expected[i]; num += d * d; den += expected[i] * expected[i]; }
        return Math.Sqrt(num / den);
    }

    [Theory, InlineData("clip_text"), InlineData("clip_text_gelu")]
    public void Matches_transformers_on_every_output(string name)
    {
        var model = ClipTextModel.FromFolder(Folder(name));
        var io = SafeTensorsFile.Open(Path.Combine(TestPaths.Diffusers, name + ".io.safetensors"));
        var ids = io.ReadInt64("input.input_ids").Select(i => (int)i).ToArray();
        int batch = (int)io.Info("input.input_ids").Shape[0];
        ClipTextOutput y;
        using (Tensor.NoGrad()) y = model.Forward(ids, batch);

        Assert.Equal(model.Config.NumHiddenLayers + 1, y.HiddenStates.Count);
        var outputs = new List<(string Key, Tensor Value)> { ("last_hidden_state", y.LastHiddenState), ("pooler_output", y.PoolerOutput) };
        for (int i = 0; i < y.HiddenStates.Count; i++) outputs.Add(($"hidden_states.{i:00}", y.HiddenStates[i]));
        foreach (var (key, value) in outputs)
        {
            Assert.Equal(io.Info("output." + key).Shape.Select(d => (int)d).ToArray(), value.Shape);
            double vs32 = RelL2(io.ReadFloat64("output." + key), value.ToArray());
            double vs64 = RelL2(io.ReadFloat64("output_f64." + key), value.ToArray());
            output.WriteLine($"{name} {key}: relative L2 {vs32:G3} to float32, {vs64:G3} to float64");
            Assert.True(vs32 < 1e-4, $"{name} {key}: relative L2 to transformers' float32 output {vs32:G3}");
            Assert.True(vs64 < 1e-4, $"{name} {key}: relative L2 to the float64 output {vs64:G3}");
        }
    }

    [Fact]
    public void Config_binds_every_key_of_the_fixture()
    {
        var c = ClipTextConfig.Load(Path.Combine(Folder("clip_text_gelu"), "config.json"));
        Assert.Equal(new ClipTextConfig(VocabSize: 1000, HiddenSize: 32, IntermediateSize: 37, NumHiddenLayers: 3, NumAttentionHeads: 4,
            MaxPositionEmbeddings: 77, HiddenAct: ClipActivation.Gelu, LayerNormEps: 1e-5, PadTokenId: 999, BosTokenId: 998,
            EosTokenId: 999, ProjectionDim: 16), c);
    }

    [Theory]
    [InlineData("\"hidden_act\": \"quick_gelu\"", "\"hidden_act\": \"relu\"", "hidden_act 'relu'")]
    [InlineData("\"vocab_size\": 1000", "\"vocab_size\": 1000, \"rope_theta\": 3", "unknown key 'rope_theta'")]
    [InlineData("\"num_attention_heads\": 4", "\"num_attention_heads\": 5", "not divisible by num_attention_heads 5")]
    [InlineData("\"hidden_size\": 32", "\"hidden_size\": \"32\"", "hidden_size must be an integer")]
    [InlineData("\"attention_dropout\": 0.0", "\"attention_dropout\": 0.1", "attention_dropout 0.1 is not supported")]
    public void Config_errors_name_the_key_and_the_file(string from, string to, string expected)
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "config.json");
        string json = File.ReadAllText(Path.Combine(Folder("clip_text"), "config.json"));
        Assert.Contains(from, json);
        File.WriteAllText(path, json.Replace(from, to));
        var e = Assert.Throws<InvalidDataException>(() => ClipTextConfig.Load(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    /// <summary>The fixture's tensors rewritten in another dtype (and optionally changed).</summary>
    static string Rewrite(TempDir dir, string dtype, Func<IEnumerable<(string, long[], float[])>, IEnumerable<(string, long[], float[])>>? edit = null)
    {
        var src = SafeTensorsFile.Open(Path.Combine(Folder("clip_text"), "model.safetensors"));
        var tensors = src.Names.Select(n => (n, src.Info(n).Shape, src.ReadFloat32(n)));
        if (edit is not null) tensors = edit(tensors);
        string folder = Path.Combine(dir.Path, "text_encoder");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Folder("clip_text"), "config.json"), Path.Combine(folder, "config.json"));
        byte[] Encode(float[] v) => dtype switch
        {
            "F16" => v.SelectMany(x => BitConverter.GetBytes((Half)x)).ToArray(),
            "BF16" => v.SelectMany(x => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(x) >> 16))).ToArray(),
            _ => v.SelectMany(x => BitConverter.GetBytes(x)).ToArray(),
        };
        SafeTensorsWriter.WriteMixed(Path.Combine(folder, "model.safetensors"), tensors.Select(t => (t.Item1, dtype, t.Item2, Encode(t.Item3))));
        return folder;
    }

    [Theory, InlineData("F16"), InlineData("BF16")]
    public void Half_precision_weights_load_as_their_float32_values(string dtype)
    {
        using var dir = new TempDir();
        var model = ClipTextModel.FromFolder(Rewrite(dir, dtype));
        var reference = SafeTensorsFile.Open(Path.Combine(Folder("clip_text"), "model.safetensors"));
        foreach (var (name, p) in model.NamedParameters())
        {
            var expected = reference.ReadFloat32(name).Select(x => dtype == "F16" ? (float)(Half)x
                : BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(x) & 0xFFFF0000u)).ToArray();
            Assert.Equal(expected, p.ToArray());
        }
    }

    [Fact]
    public void A_position_ids_buffer_is_ignored_but_an_unknown_tensor_is_an_error()
    {
        using var dir = new TempDir();
        string ok = Rewrite(dir, "F32", ts => ts.Append(("text_model.embeddings.position_ids", [1, 77], new float[77])));
        ClipTextModel.FromFolder(ok);
        using var dir2 = new TempDir();
        string bad = Rewrite(dir2, "F32", ts => ts.Append(("text_projection.weight", [16, 32], new float[16 * 32])));
        var e = Assert.Throws<InvalidDataException>(() => ClipTextModel.FromFolder(bad));
        Assert.Contains("text_projection.weight", e.Message);
    }

    [Fact]
    public void Missing_and_wrongly_shaped_tensors_are_named()
    {
        using var dir = new TempDir();
        string missing = Rewrite(dir, "F32", ts => ts.Where(t => t.Item1 != "text_model.encoder.layers.1.mlp.fc2.bias"));
        var e = Assert.Throws<InvalidDataException>(() => ClipTextModel.FromFolder(missing));
        Assert.Contains("text_model.encoder.layers.1.mlp.fc2.bias", e.Message);
        Assert.Contains("model.safetensors", e.Message);

        using var dir2 = new TempDir();
        string shaped = Rewrite(dir2, "F32", ts => ts.Select(t => t.Item1 == "text_model.final_layer_norm.weight" ? (t.Item1, new long[] { 31 }, t.Item3[..31]) : t));
        e = Assert.Throws<InvalidDataException>(() => ClipTextModel.FromFolder(shaped));
        Assert.Contains("'text_model.final_layer_norm.weight' has shape (31), the model expects (32)", e.Message);
    }

    [Fact]
    public void A_pickle_checkpoint_is_refused_with_a_hint_to_convert()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Folder("clip_text"), "config.json"), Path.Combine(dir.Path, "config.json"));
        File.WriteAllBytes(Path.Combine(dir.Path, "pytorch_model.bin"), [0x80, 0x02]);
        var e = Assert.Throws<InvalidDataException>(() => ClipTextModel.FromFolder(dir.Path));
        Assert.Contains("pytorch_model.bin", e.Message);
        Assert.Contains("safetensors", e.Message);
    }

    [Fact]
    public void Pooling_follows_the_eos_rule_of_the_config()
    {
        // eos_token_id 999 (new rule): the first position holding 999, even when a larger id comes later;
        // eos_token_id 2 (legacy SD 1.x configs): argmax of the ids.
        var rng = new Rng(5);
        var model = new ClipTextModel(ClipTextConfig.Parse(File.ReadAllText(Path.Combine(Folder("clip_text"), "config.json"))), rng);
        var legacy = new ClipTextModel(model.Config with { EosTokenId = 2 }, new Rng(5));
        int[] ids = [998, 5, 999, 7, 999, 0];
        using var _ = Tensor.NoGrad();
        var y = model.Forward(ids, 1);
        Assert.Equal(y.LastHiddenState.Slice(1, 2, 1).ToArray(), y.PoolerOutput.ToArray());
        int[] ids2 = [998, 5, 4, 999, 7, 0];
        var y2 = legacy.Forward(ids2, 1);
        Assert.Equal(y2.LastHiddenState.Slice(1, 3, 1).ToArray(), y2.PoolerOutput.ToArray());
    }

    [Theory, InlineData(0), InlineData(1), InlineData(2), InlineData(3)]
    public void Clip_skip_takes_the_hidden_state_k_layers_before_the_last_through_the_final_norm(int clipSkip)
    {
        // reference: transformers' hidden_states[−(k + 1)] through a float64 layer norm with final_layer_norm's weights
        var model = ClipTextModel.FromFolder(Folder("clip_text"));
        var io = SafeTensorsFile.Open(Path.Combine(TestPaths.Diffusers, "clip_text.io.safetensors"));
        var ids = io.ReadInt64("input.input_ids").Select(i => (int)i).ToArray();
        var weights = SafeTensorsFile.Open(Path.Combine(Folder("clip_text"), "model.safetensors"));
        double[] gamma = weights.ReadFloat64("text_model.final_layer_norm.weight"), beta = weights.ReadFloat64("text_model.final_layer_norm.bias");
        var hidden = io.ReadFloat64($"output_f64.hidden_states.{model.Config.NumHiddenLayers - clipSkip:00}");
        int c = gamma.Length;
        var expected = new double[hidden.Length];
        for (int row = 0; row < hidden.Length / c; row++)
        {
            var x = hidden.AsSpan(row * c, c);
            double mean = 0, var = 0;
            foreach (double v in x) mean += v / c;
            foreach (double v in x) var += (v - mean) * (v - mean) / c;
            for (int j = 0; j < c; j++) expected[row * c + j] = (x[j] - mean) / Math.Sqrt(var + model.Config.LayerNormEps) * gamma[j] + beta[j];
        }
        float[] actual;
        using (Tensor.NoGrad()) actual = model.EncodePrompt(ids, 2, clipSkip).ToArray();
        Assert.True(RelL2(expected, actual) < 1e-5, $"clip skip {clipSkip}: relative L2 {RelL2(expected, actual):G3}");
        Assert.Throws<ArgumentException>(() => model.EncodePrompt(ids, 2, model.Config.NumHiddenLayers + 1));
    }

    [Fact]
    public void Without_an_rng_the_weights_start_at_zero_and_layer_norms_at_one()
    {
        var model = new ClipTextModel(ClipTextConfig.Load(Path.Combine(Folder("clip_text"), "config.json")), rng: null);
        foreach (var (name, p) in model.NamedParameters())
            Assert.All(p.ToArray(), v => Assert.Equal(name.Contains("layer_norm") && name.EndsWith(".weight") ? 1f : 0f, v));
    }

    [Fact]
    public void Clip_skip_final_norm_of_the_last_hidden_state_is_last_hidden_state()
    {
        var model = ClipTextModel.FromFolder(Folder("clip_text"));
        using var _ = Tensor.NoGrad();
        var y = model.Forward([998, 3, 4, 999], 1);
        Assert.Equal(y.LastHiddenState.ToArray(), model.FinalLayerNorm(y.HiddenStates[^1]).ToArray());
    }
}

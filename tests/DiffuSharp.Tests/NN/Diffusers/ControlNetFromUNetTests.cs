// ControlNetModel.FromUNet against diffusers' ControlNetModel.from_unet: the same config.json (Fixtures/
// controlnet_from_unet, made by make_controlnet_from_unet.py); the encoder half's weights copied; the zero convolutions
// zero, so the residuals are exactly 0 and the UNet's output is unchanged; the folder ControlNetFolder writes loads
// back with the same outputs; UNets a ControlNetModel cannot mirror are refused by key.
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.NN.Diffusers;

public sealed class ControlNetFromUNetTests
{
    static string Dir => Path.Combine(TestPaths.Fixtures, "controlnet_from_unet");

    static UNet2DConditionModel UNet() => new(UNet2DConditionConfig.Load(Path.Combine(Dir, "unet_config.json")), new Rng(11));

    /// <summary>The UNet's inputs: 4×8×8 latents, 5 tokens of width 16, a 3×32×32 control image in [0, 1].</summary>
    static (Tensor X, Tensor T, Tensor Ctx, Tensor Cond) Inputs(int batch = 2)
    {
        var rng = new Rng(12);
        var cond = Tensor.Rand([batch, 3, 32, 32], rng);
        return (Tensor.RandN([batch, 4, 8, 8], rng), Tensor.FromArray([10f, 700f], 2), Tensor.RandN([batch, 5, 16], rng), cond);
    }

    [Fact]
    public void Config_is_the_one_diffusers_from_unet_writes()
    {
        var ours = ControlNetFolder.ConfigJson(ControlNetConfig.FromUNet(UNet2DConditionConfig.Load(Path.Combine(Dir, "unet_config.json")), 3, [8, 16, 32]));
        var theirs = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "controlnet_config.json")))!.AsObject();
        Assert.Equal(theirs.Select(p => p.Key).Order(StringComparer.Ordinal), ours.Select(p => p.Key).Order(StringComparer.Ordinal));
        // diffusers keeps the UNet's scalar "1"/"false" where we write one value per block: a scalar equals a list of copies.
        foreach (var (key, value) in theirs)
        {
            var mine = ours[key];
            if (value is JsonValue && mine is JsonArray list)
                Assert.All(list, v => Assert.Equal(value.ToJsonString(), v!.ToJsonString()));
            else Assert.True(JsonNode.DeepEquals(value, mine), $"{key}: diffusers {value?.ToJsonString() ?? "null"}, ours {mine?.ToJsonString() ?? "null"}");
        }
    }

    [Fact]
    public void Weights_are_copied_zero_convs_are_zero_and_the_unet_output_is_unchanged()
    {
        var unet = UNet();
        var net = ControlNetModel.FromUNet(unet, 3, [8, 16, 32], new Rng(13));
        var u = unet.NamedParameters().ToDictionary(p => p.Name, p => p.Param.ToArray());
        int copied = 0, zero = 0;
        foreach (var (name, p) in net.NamedParameters())
        {
            if (ControlNetModel.CopiedFromUNet.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal)))
            {
                Assert.Equal(u[name], p.ToArray());
                copied++;
            }
            else if (name.StartsWith("controlnet_down_blocks.", StringComparison.Ordinal) || name.StartsWith("controlnet_mid_block.", StringComparison.Ordinal)
                || name.StartsWith("controlnet_cond_embedding.conv_out.", StringComparison.Ordinal))
            {
                Assert.All(p.ToArray(), v => Assert.Equal(0f, v));
                zero++;
            }
            else Assert.StartsWith("controlnet_cond_embedding.", name);
        }
        Assert.True(copied > 40 && zero == 2 * (unet.SkipCount + 2), $"{copied} copied, {zero} zero");
        Assert.Contains(net.NamedParameters(), p => p.Name == "controlnet_cond_embedding.conv_in.weight" && p.Param.ToArray().Any(v => v != 0));

        var (x, t, ctx, cond) = Inputs();
        using var _ = Tensor.NoGrad();
        var r = net.Forward(x, t, ctx, cond);
        Assert.Equal(unet.SkipCount, r.DownBlockResSamples.Count);
        foreach (var d in r.DownBlockResSamples.Append(r.MidBlockResSample)) Assert.All(d.ToArray(), v => Assert.Equal(0f, v));
        Assert.Equal(unet.Forward(x, t, ctx).ToArray(), unet.Forward(x, t, ctx, null, r.DownBlockResSamples, r.MidBlockResSample).ToArray());
    }

    [Fact]
    public void The_folder_loads_back_with_the_same_residuals()
    {
        var unet = UNet();
        var net = ControlNetModel.FromUNet(unet, 3, [8, 16, 32], new Rng(14));
        var rng = new Rng(15);
        foreach (var (_, p) in net.NamedParameters()) { var noise = Tensor.RandN(p.Shape, rng).ToArray(); for (int i = 0; i < noise.Length; i++) p.Data[i] += 0.02f * noise[i]; }
        using var dir = new TempDir();
        ControlNetFolder.Save(dir.Path, net.Config, net.NamedParameters().Select(p => (p.Name, p.Param.Shape.ToArray(), p.Param.ToArray())));
        var loaded = ComponentLoader.LoadControlNet(dir.Path);
        var (x, t, ctx, cond) = Inputs();
        using var _ = Tensor.NoGrad();
        var a = net.Forward(x, t, ctx, cond);
        var b = loaded.Forward(x, t, ctx, cond);
        Assert.Contains(a.MidBlockResSample.ToArray(), v => v != 0);
        Assert.Equal(a.MidBlockResSample.ToArray(), b.MidBlockResSample.ToArray());
        for (int i = 0; i < a.DownBlockResSamples.Count; i++) Assert.Equal(a.DownBlockResSamples[i].ToArray(), b.DownBlockResSamples[i].ToArray());
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "config.json")));
        Assert.Equal("ControlNetModel", doc.RootElement.GetProperty("_class_name").GetString());
    }

    [Fact]
    public void A_unet_a_controlnet_cannot_mirror_is_refused_by_key()
    {
        var c = UNet2DConditionConfig.Load(Path.Combine(Dir, "unet_config.json"));
        var e = Assert.Throws<ArgumentException>(() => ControlNetConfig.FromUNet(c with { LayersPerBlock = [1, 2], TransformerLayersPerBlock = [[1], [1, 1]] }));
        Assert.Contains("layers_per_block", e.Message);
        e = Assert.Throws<ArgumentException>(() => ControlNetConfig.FromUNet(c with { CrossAttentionDim = [16, 32] }));
        Assert.Contains("cross_attention_dim", e.Message);
        e = Assert.Throws<ArgumentException>(() => ControlNetConfig.FromUNet(c, 3, []));
        Assert.Contains("conditioning_embedding_out_channels", e.Message);
    }
}

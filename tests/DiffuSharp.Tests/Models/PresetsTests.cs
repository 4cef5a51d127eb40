// The preset table: the bench presets are the UNetModel arguments scripts/bench_train_torch.py builds (mnist-s is
// the parity fixture's model), attention_resolutions turn into the right downsample rates, tiny is unchanged.
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.NN;
using Xunit;

namespace DiffuSharp.Tests.Models;

public sealed class PresetsTests
{
    [Fact]
    public void Mnist_s_builds_the_parity_fixtures_model()
    {
        var preset = Presets.Get("mnist-s");
        var model = new UNetModel(preset.Model.ToUNetConfig(), new Rng(0));
        var weights = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "mnist_s_weights.safetensors"));
        var mine = model.NamedParameters().ToDictionary(p => p.Name, p => p.Param.Shape);
        Assert.Equal(weights.Names.Order(StringComparer.Ordinal), mine.Keys.Order(StringComparer.Ordinal));
        foreach (var name in weights.Names)
            Assert.Equal(weights.Info(name).Shape.Select(d => (int)d).ToArray(), mine[name]);
        Assert.Equal(32, preset.BatchSize);
    }

    [Theory]
    //          name             attention ds  channels mult        heads  scale-shift  batch  in  size
    [InlineData("mnist-s",       new[] { 2 },  32,      "1,2,2",    1,     false,       32,    1,  28)]
    [InlineData("mnist-m",       new[] { 2 },  64,      "1,2,2",    1,     false,       64,    1,  28)]
    [InlineData("cifar-s",       new[] { 2 },  64,      "1,2,2,2",  1,     false,       32,    3,  32)]
    [InlineData("fashion-mnist", new[] { 4 },  32,      "1,2,2",    1,     true,        32,    1,  28)]
    public void Presets_are_the_documented_models(string name, int[] attentionDs, int channels, string mult, int heads,
        bool scaleShift, int batch, int inChannels, int imageSize)
    {
        var p = Presets.Get(name);
        var u = p.Model.ToUNetConfig();
        Assert.Equal(attentionDs, u.AttentionDs);
        Assert.Equal(channels, u.ModelChannels);
        Assert.Equal(mult, string.Join(",", u.Mult));
        Assert.Equal(heads, u.NumHeads);
        Assert.Equal(scaleShift, u.UseScaleShiftNorm);
        Assert.Equal((inChannels, imageSize, batch), (u.InChannels, p.Model.ImageSize, p.BatchSize));
        Assert.Equal(2, u.NumResBlocks);
        Assert.Equal(0.1f, u.Dropout);
        Assert.Equal(1000, p.Model.DiffusionSteps);
        Assert.False(p.Model.LearnSigma);
    }

    [Fact]
    public void Bench_presets_use_the_linear_schedule_and_fashion_mnist_the_cosine_one_with_ten_classes()
    {
        foreach (var name in new[] { "mnist-s", "mnist-m", "cifar-s" })
            Assert.Equal(("linear", (int?)null), (Presets.Get(name).Model.NoiseSchedule, Presets.Get(name).Model.ClassCount));
        var fm = Presets.Get("fashion-mnist").Model;
        Assert.Equal(("cosine", (int?)10), (fm.NoiseSchedule, fm.ClassCount));
    }

    [Fact]
    public void Tiny_is_unchanged()
    {
        var m = Presets.Get("tiny").Model;
        Assert.Equal((28, 1, 32, 1, "1,2", "", 100, true), (m.ImageSize, m.InChannels, m.NumChannels, m.NumResBlocks, m.ChannelMult,
            m.AttentionResolutions, m.DiffusionSteps, m.UseScaleShiftNorm));
        Assert.Equal(64, Presets.Get("tiny").BatchSize);
    }

    [Fact]
    public void Unknown_preset_names_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => Presets.Get("huge"));
        Assert.Contains("tiny, mnist-s, mnist-m, cifar-s, fashion-mnist", e.Message);
    }
}

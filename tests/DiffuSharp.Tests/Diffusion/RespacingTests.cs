// space_timesteps cases from improved-diffusion's docstring and edge cases (expected values printed by the
// reference's own space_timesteps), and what a SpacedDiffusion hands its model.
using DiffuSharp.Diffusion;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

public class RespacingTests
{
    [Fact]
    public void Docstring_example_10_15_20_of_300()
    {
        int[] expected =
        [
            0, 11, 22, 33, 44, 55, 66, 77, 88, 99,
            100, 107, 114, 121, 128, 135, 142, 149, 157, 164, 171, 178, 185, 192, 199,
            200, 205, 210, 216, 221, 226, 231, 236, 242, 247, 252, 257, 263, 268, 273, 278, 283, 289, 294, 299,
        ];
        Assert.Equal(expected, Respacing.SpaceTimesteps(300, "10,15,20"));
    }

    [Theory]
    [InlineData(1000, "ddim50", 50, 20)]
    [InlineData(1000, "ddim25", 25, 40)]
    [InlineData(1000, "ddim30", 30, 34)]     // ⌈1000/34⌉ = 30
    [InlineData(1000, "250", 250, 4)]
    public void Strided_spacings(int T, string spec, int count, int stride)
    {
        var s = Respacing.SpaceTimesteps(T, spec);
        Assert.Equal(count, s.Length);
        Assert.Equal(0, s[0]);
        Assert.Equal(stride, s[1]);
    }

    [Fact]
    public void Fractional_strides_round_half_to_even_as_python()
    {
        Assert.Equal([0, 24, 49, 50, 66, 83, 99], Respacing.SpaceTimesteps(100, "3,4"));   // 24.5 → 24
        Assert.Equal([0, 3, 6, 9], Respacing.SpaceTimesteps(10, "4"));
        Assert.Equal([0, 5, 7, 8], Respacing.SpaceTimesteps(9, "1, 3"));                   // a count of 1 takes the section start
    }

    [Fact]
    public void Impossible_spacings_are_refused()
    {
        Assert.Contains("cannot take exactly 999 of 1000", Assert.Throws<ArgumentException>(() => Respacing.SpaceTimesteps(1000, "ddim999")).Message);
        Assert.Contains("cannot divide a section of 2 steps into 3", Assert.Throws<ArgumentException>(() => Respacing.SpaceTimesteps(7, "2,0,3")).Message);
        Assert.Contains("not a non-negative integer", Assert.Throws<ArgumentException>(() => Respacing.SpaceTimesteps(100, "10,x")).Message);
        Assert.Contains("ddimN", Assert.Throws<ArgumentException>(() => Respacing.SpaceTimesteps(100, "ddim")).Message);
        Assert.Throws<ArgumentException>(() => Respacing.SpaceTimesteps(100, "-5"));
    }

    [Fact]
    public void A_spaced_process_keeps_the_base_alphas_cumprod_and_maps_timesteps()
    {
        var betas = NoiseSchedule.GetNamedBetaSchedule("linear", 1000);
        var full = new GaussianDiffusion(betas, ModelMeanType.Epsilon, ModelVarType.FixedLarge, LossType.Mse);
        var keep = Respacing.SpaceTimesteps(1000, "10,15,20");
        var s = new SpacedDiffusion(keep, betas, ModelMeanType.Epsilon, ModelVarType.FixedLarge, LossType.Mse, rescaleTimesteps: false);
        Assert.Equal(keep, s.TimestepMap);
        for (int i = 0; i < keep.Length; i++)
            Assert.Equal(full.AlphasCumprod[keep[i]], s.AlphasCumprod[i], 1e-15);
        // Without rescaling the model sees the original index; with it, index · 1000/T (rounded to float32 first).
        Assert.Equal([0f, 334f, 999f], s.ModelTimesteps([0, 10, 44]).ToArray());
        var r = new SpacedDiffusion([0, 300, 1499], NoiseSchedule.GetNamedBetaSchedule("cosine", 1500), ModelMeanType.Epsilon, ModelVarType.FixedLarge,
            LossType.Mse, rescaleTimesteps: true);
        float scale = (float)(1000.0 / 1500);
        Assert.Equal([0f, 300f * scale, 1499f * scale], r.ModelTimesteps([0, 1, 2]).ToArray());
        // The model really is called with them.
        float[]? seen = null;
        r.PMeanVariance((x, ts) => { seen = ts.ToArray(); return x; }, Tensor.Zeros(3, 1, 2, 2), [0, 1, 2]);
        Assert.Equal(r.ModelTimesteps([0, 1, 2]).ToArray(), seen);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SpacedDiffusion([5, 1000], betas, ModelMeanType.Epsilon, ModelVarType.FixedLarge, LossType.Mse));
    }
}

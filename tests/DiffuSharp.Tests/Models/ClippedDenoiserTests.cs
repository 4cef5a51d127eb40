// ClippedDenoiser (improved-diffusion's clip_denoised for schedulers that cannot clip x0) and the σ limit of the
// schedulers without clipping of their own (ModelSchedulers).
using DiffuSharp.Diffusion;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.Schedulers;
using Xunit;

namespace DiffuSharp.Tests.Models;

public sealed class ClippedDenoiserTests
{
    static string Folder => Path.Combine(TestPaths.Fixtures, "respacing_ddim10");

    static double RelErr(float[] a, float[] b)
    {
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++) { num = Math.Max(num, Math.Abs(a[i] - b[i])); den = Math.Max(den, Math.Abs(b[i])); }
        return num / den;
    }

    [Fact]
    public void Euler_with_the_clipped_model_is_improved_diffusions_ddim_sample_loop()
    {
        // Euler's deterministic step in σ is DDIM's (η = 0) step in ᾱ; with ε re-derived from the clipped x0 both are
        // improved-diffusion's ddim_sample with clip_denoised. Same timesteps ("leading": 900, 800, …, 0), same noise:
        // the sample recorded by improved-diffusion itself (Fixtures/respacing_ddim10).
        var (config, unet) = ModelFolder.Load(Folder);
        var noise = Npy.ReadFloat32(Path.Combine(Folder, "noise.npy"));
        var expected = Npy.ReadFloat32(Path.Combine(Folder, "expected.npy")).Data;
        var euler = ModelSchedulers.BaseConfig(config).As("EulerDiscreteScheduler") with { TimestepSpacing = TimestepSpacing.Leading };
        double scale = ModelSchedulers.TimestepScale(config);
        DiffusionModel fn = (x, t) => unet.Forward(x, t);
        float[] Run(DiffusionModel model)
        {
            using var _ = Tensor.NoGrad();
            var x0 = Tensor.FromArray(noise.Data, noise.Shape);
            return SchedulerSampling.Sample(SchedulerFactory.Create(euler), model, x0, 10, default, scale).ToArray();
        }
        double err = RelErr(Run(ClippedDenoiser.Wrap(config, fn, scale)), expected);
        Assert.True(err <= 1e-4, $"Euler + clipped model against ddim_sample_loop: rel err {err:E2}");
        // the clipping matters for this model: unclipped, Euler is another sample
        Assert.True(RelErr(Run(fn), expected) > 1e-3);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void A_prediction_within_range_passes_and_one_beyond_is_clamped(bool predictXStart, bool predictV)
    {
        var config = new ModelConfig { DiffusionSteps = 1000, NoiseSchedule = "cosine", PredictXStart = predictXStart, PredictV = predictV };
        var betas = NoiseSchedule.GetNamedBetaSchedule("cosine", 1000);
        var rng = new Rng(5);
        const int t = 700;
        double alphaBar = 1;
        for (int i = 0; i <= t; i++) alphaBar *= 1 - betas[i];
        float a = (float)Math.Sqrt(alphaBar), b = (float)Math.Sqrt(1 - alphaBar);
        var eps = Tensor.RandN([2, 1, 4, 4], rng);
        foreach (double amplitude in new[] { 0.5, 3.0 })
        {
            var x0 = (Tensor.Rand([2, 1, 4, 4], rng) * 2 - 1) * amplitude;    // within [−1, 1] for 0.5, mostly beyond for 3
            var x = a * x0 + b * eps;
            var y = predictXStart ? x0 : predictV ? a * eps - b * x0 : eps;
            var wrapped = ClippedDenoiser.Wrap(config, (_, _) => y, timestepScale: 1.0)(x, Tensor.Full([2], t));
            // the x0 the wrapped output implies
            var implied = predictXStart ? wrapped : predictV ? a * x - b * wrapped : (x - b * wrapped) / a;
            var want = x0.Clamp(-1, 1).ToArray();
            Assert.True(RelErr(implied.ToArray(), want) <= 1e-4, $"amplitude {amplitude}: implied x0 is not clamp(x0)");
            if (amplitude < 1) Assert.True(RelErr(wrapped.ToArray(), y.ToArray()) <= 1e-4, "a prediction within range changed");
        }
    }

    [Fact]
    public void Fractional_timesteps_interpolate_log_sigma()
    {
        var logSigma = new[] { Math.Log(1.0), Math.Log(4.0) };
        Assert.Equal(1 / (1 + 1.0), ClippedDenoiser.AlphaBar(logSigma, 0), 12);
        Assert.Equal(1 / (1 + 16.0), ClippedDenoiser.AlphaBar(logSigma, 1), 12);
        Assert.Equal(1 / (1 + 4.0), ClippedDenoiser.AlphaBar(logSigma, 0.5), 12);    // σ = 2, the geometric mean
    }

    [Fact]
    public void Schedulers_that_cannot_clip_start_at_sigma_80_and_the_others_at_T()
    {
        var config = new ModelConfig { DiffusionSteps = 1000, NoiseSchedule = "cosine" };
        foreach (string name in new[] { "euler", "euler_a", "heun", "lms", "kdpm2" })
        {
            var s = ModelSchedulers.Create(config, name);
            s.SetTimesteps(10);
            double first = s.Sigmas![0];
            Assert.True(first is <= ModelSchedulers.SigmaMax and > 60, $"{name}: first σ {first}");
            Assert.True(s.Config.NumTrainTimesteps < 1000);
        }
        var pndm = ModelSchedulers.Create(config, "pndm");
        Assert.True(pndm.Config.NumTrainTimesteps < 1000);
        foreach (string name in new[] { "ddim", "dpm++2m", "unipc" })
            Assert.Equal(1000, ModelSchedulers.Create(config, name == "ddim" ? "DDIMScheduler" : name).Config.NumTrainTimesteps);
    }
}

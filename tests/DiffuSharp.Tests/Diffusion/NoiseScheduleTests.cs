// Beta schedules (values checked against numpy / improved-diffusion printed with repr) and the config factory,
// whose defaults must be improved-diffusion's model_and_diffusion_defaults().
using DiffuSharp.Diffusion;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

public class NoiseScheduleTests
{
    [Fact]
    public void Linear_schedule_scales_with_T_and_matches_numpy_linspace_bits()
    {
        var b = NoiseSchedule.GetNamedBetaSchedule(BetaSchedule.Linear, 4000);
        Assert.Equal(2.5e-05, b[0]);
        Assert.Equal(0.005, b[^1]);
        Assert.Equal(2.6244061015253815e-05, b[1]);      // numpy: 1 · step + start, two roundings
        // T = 30: scale 1000/30; values repr'd from numpy's linspace (T ≤ 20 is refused: β_T ≥ 1).
        var b30 = NoiseSchedule.GetNamedBetaSchedule("linear", 30);
        Assert.Equal([0.0033333333333333335, 0.026206896551724142, 0.3921839080459771, 0.6666666666666667], new[] { b30[0], b30[1], b30[17], b30[^1] });
    }

    [Fact]
    public void Cosine_schedule_is_clipped_at_0999()
    {
        var b = NoiseSchedule.GetNamedBetaSchedule("cosine", 1000);
        Assert.Equal(4.128422482196914e-05, b[0]);
        Assert.Equal(0.999, b[^1]);
        Assert.All(b, v => Assert.InRange(v, 0, 0.999));
        Assert.Equal([0.5, 0.5], NoiseSchedule.BetasForAlphaBar(2, t => 1 - t, maxBeta: 0.5));
    }

    [Fact]
    public void Schedule_names_parse_and_unknown_ones_are_refused()
    {
        Assert.Equal(BetaSchedule.Cosine, NoiseSchedule.Parse("cosine"));
        Assert.Equal("linear", NoiseSchedule.Name(NoiseSchedule.Parse("linear")));
        var e = Assert.Throws<ArgumentException>(() => NoiseSchedule.GetNamedBetaSchedule("sqrt", 10));
        Assert.Contains("unknown beta schedule \"sqrt\"", e.Message);
        Assert.Contains("\"linear\", \"cosine\"", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.GetNamedBetaSchedule(BetaSchedule.Linear, 0));
    }

    [Fact]
    public void Factory_defaults_are_improved_diffusions()
    {
        var d = DiffusionFactory.Create(new DiffusionConfig());
        Assert.Equal(1000, d.NumTimesteps);
        Assert.Equal(1000, d.OriginalNumSteps);
        Assert.Equal(ModelMeanType.Epsilon, d.ModelMeanType);
        Assert.Equal(ModelVarType.FixedLarge, d.ModelVarType);
        Assert.Equal(LossType.RescaledMse, d.LossType);            // rescale_learned_sigmas = True
        Assert.True(d.RescaleTimesteps);
        Assert.Equal(Enumerable.Range(0, 1000), d.TimestepMap);
        // All steps kept: the same process (betas recomputed as 1 − ᾱ_t/ᾱ_{t−1}, equal to ~1e-12).
        Compare.CloseRel(d.Betas, NoiseSchedule.GetNamedBetaSchedule("linear", 1000), 1e-12, "betas");
    }

    [Fact]
    public void Factory_maps_each_flag()
    {
        Assert.Equal(LossType.RescaledKl, DiffusionFactory.Create(new DiffusionConfig(UseKl: true)).LossType);
        Assert.Equal(LossType.Mse, DiffusionFactory.Create(new DiffusionConfig(RescaleLearnedSigmas: false)).LossType);
        Assert.Equal(ModelMeanType.StartX, DiffusionFactory.Create(new DiffusionConfig(PredictXStart: true)).ModelMeanType);
        Assert.Equal(ModelVarType.FixedSmall, DiffusionFactory.Create(new DiffusionConfig(SigmaSmall: true)).ModelVarType);
        Assert.Equal(ModelVarType.LearnedRange, DiffusionFactory.Create(new DiffusionConfig(LearnSigma: true, SigmaSmall: true)).ModelVarType);
        var spaced = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 4000, NoiseSchedule: "cosine", TimestepRespacing: "250"));
        Assert.Equal(250, spaced.NumTimesteps);
        Assert.Equal(4000, spaced.OriginalNumSteps);
        // The model sees the original timestep, rescaled to 0..1000: index 1 → 16 (stride 3999/249 ≈ 16.06) → 4.
        Assert.Equal([0f, 4f, 999.75f], spaced.ModelTimesteps([0, 1, 249]).ToArray());
        Assert.Contains("unknown beta schedule \"quadratic\"",
            Assert.Throws<ArgumentException>(() => DiffusionFactory.Create(new DiffusionConfig(NoiseSchedule: "quadratic"))).Message);
        Assert.Contains("DiffusionSteps", Assert.Throws<ArgumentException>(() => DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 0))).Message);
        Assert.Throws<ArgumentException>(() => DiffusionFactory.Create(new DiffusionConfig(TimestepRespacing: "ddim999")));
    }
}

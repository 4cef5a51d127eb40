// diffusers' DDPMScheduler on an improved-diffusion model's schedule gives improved-diffusion's own p_sample
// (Fixtures/parity/diffusion_ref.safetensors, made by improved-diffusion 1bc7bbb; see parity/README.md): the
// posterior mean from the clipped x0 plus the fixed variance, at t = 0, 1, 500, 999 of T = 1000, linear and cosine.
using DiffuSharp.Diffusion;
using DiffuSharp.IO;
using DiffuSharp.Schedulers;
using Xunit;

namespace DiffuSharp.Tests.Schedulers;

public class ImprovedDiffusionScheduleTests
{
    // diffusers keeps β and ᾱ in float32, improved-diffusion in float64: 1 − ᾱ_0 (1e-4 linear, 4e-5 cosine) carries
    // a 6e-4 (linear) to 1.5e-3 (cosine) relative float32 error into √(1 − ᾱ) at t = 0, so the steps agree to the
    // bound below (measured: linear < 2e-5, cosine 1.2e-4), not to float32 rounding. A wrong coefficient is off by %.
    static double Tolerance(string schedule) => schedule == "linear" ? 2e-5 : 2e-4;

    [Theory]
    [InlineData("linear", true)]
    [InlineData("linear", false)]
    [InlineData("cosine", true)]
    [InlineData("cosine", false)]
    public void Ddpm_step_matches_improved_diffusion_p_sample(string schedule, bool sigmaSmall)
    {
        var f = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "diffusion_ref.safetensors"));
        var config = ImprovedDiffusionSchedule.ConfigFor(new DiffusionConfig(NoiseSchedule: schedule, SigmaSmall: sigmaSmall), "DDPMScheduler");
        var ddpm = new DdpmScheduler(config);
        ddpm.SetTimesteps(1000);                  // the full process: t → t − 1
        var xt = f.ReadFloat32("x_t"); var eps = f.ReadFloat32("eps"); var noise = f.ReadFloat32("noise");
        var expected = f.ReadFloat32($"{schedule}.p_sample.{(sigmaSmall ? "fixedsmall" : "fixedlarge")}");
        long[] ts = f.ReadInt64("t");
        int per = xt.Length / ts.Length;
        var ours = new double[xt.Length];
        for (int b = 0; b < ts.Length; b++)
        {
            Tensor Slice(float[] a) => Tensor.FromArray(a.AsSpan(b * per, per).ToArray(), 1, 1, 28, 28);
            var prev = ddpm.Step(Slice(eps), ts[b], Slice(xt), Slice(noise)).PrevSample.ToArray();
            for (int i = 0; i < per; i++) ours[b * per + i] = prev[i];
        }
        var r = SchedulerReplay.Measure("p_sample", ours, expected.Select(v => (double)v).ToArray(), Tolerance(schedule));
        Assert.True(r.Passed, $"{schedule} sigma_small={sigmaSmall}: rel {r.RelErr:E2}");
    }

    // diffusers' learned_range is improved DDPM's (eq. 15): on the arithmetic model of make_diffusion_extra.py
    // (T = 100 linear; mean part x/2 + t/1000, range part clamp(x/4 − 0.1, −1, 1)) the DDPM step's mean, x0 and σ
    // equal p_mean_variance's mean, pred_xstart and exp(½ log_variance). x0-prediction ("sample") is checked on the
    // mean of its START_X case (diffusers' "learned" differs from improved-diffusion's LEARNED: it reads the output as
    // σ², not log σ², so only the mean is compared there).
    [Theory]
    [InlineData("eps_learnedrange", false)]
    [InlineData("xstart_learned", true)]
    public void Ddpm_step_matches_improved_diffusion_p_mean_variance(string which, bool predictXStart)
    {
        var f = SafeTensorsFile.Open(Path.Combine(TestPaths.Fixtures, "diffusion_extra_ref.safetensors"));
        var config = ImprovedDiffusionSchedule.ConfigFor(new DiffusionConfig(DiffusionSteps: 100, LearnSigma: !predictXStart, PredictXStart: predictXStart), "DDPMScheduler");
        var ddpm = new DdpmScheduler(config);
        ddpm.SetTimesteps(100);
        var xt = f.ReadFloat32("x_t");
        long[] ts = f.ReadInt64("t");
        int per = xt.Length / ts.Length;
        var (mean, x0, std, stdRef) = (new double[xt.Length], new double[xt.Length], new List<double>(), new List<double>());
        var logVar = f.ReadFloat32($"pmv.{which}.log_variance");
        for (int b = 0; b < ts.Length; b++)
        {
            var x = Tensor.FromArray(xt.AsSpan(b * per, per).ToArray(), 1, 3, 4, 4);
            var m = x * 0.5 + ts[b] * 0.001;
            var output = predictXStart ? m : Tensor.Concat([m, (x * 0.25 - 0.1).Clamp(-1, 1)], 1);
            var zero = ddpm.Step(output, ts[b], x, Tensor.Zeros(1, 3, 4, 4));
            var one = ddpm.Step(output, ts[b], x, Tensor.Ones(1, 3, 4, 4));
            var (m0, m1, p) = (zero.PrevSample.ToArray(), one.PrevSample.ToArray(), zero.PredOriginalSample!.ToArray());
            for (int i = 0; i < per; i++)
            {
                mean[b * per + i] = m0[i];
                x0[b * per + i] = p[i];
                if (ts[b] > 0 && !predictXStart)
                {
                    std.Add(m1[i] - m0[i]);
                    stdRef.Add(Math.Exp(0.5 * logVar[b * per + i]));
                }
            }
        }
        static double[] D(float[] a) => [.. a.Select(v => (double)v)];
        var checks = new List<ReplayComparison>
        {
            SchedulerReplay.Measure("mean", mean, D(f.ReadFloat32($"pmv.{which}.mean")), 2e-5),
            SchedulerReplay.Measure("pred_xstart", x0, D(f.ReadFloat32($"pmv.{which}.pred_xstart")), 2e-5),
        };
        if (!predictXStart) checks.Add(SchedulerReplay.Measure("std", [.. std], [.. stdRef], 2e-5));
        foreach (var r in checks) Assert.True(r.Passed, $"{which} {r.Tensor}: rel {r.RelErr:E2}");
    }

    [Fact]
    public void Config_carries_the_models_schedule_and_parameterisation()
    {
        var c = ImprovedDiffusionSchedule.ConfigFor(new DiffusionConfig(DiffusionSteps: 4000, NoiseSchedule: "cosine", PredictXStart: true, LearnSigma: true), "DDPMScheduler");
        Assert.Equal(4000, c.NumTrainTimesteps);
        Assert.Equal(PredictionType.Sample, c.PredictionType);
        Assert.Equal(VarianceType.LearnedRange, c.VarianceType);
        Assert.Equal(NoiseSchedule.GetNamedBetaSchedule("cosine", 4000), c.TrainedBetas);
        Assert.True(ImprovedDiffusionSchedule.ConfigFor(new DiffusionConfig(), "DDIMScheduler").SetAlphaToOne);
        Assert.Equal("EulerDiscreteScheduler", ImprovedDiffusionSchedule.ConfigFor(new DiffusionConfig(), "EulerDiscreteScheduler").ClassName);
    }
}

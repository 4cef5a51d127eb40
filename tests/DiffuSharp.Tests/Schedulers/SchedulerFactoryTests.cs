// Sampler names (command line, sd-webui display names, diffusers class names), the shared quadrature behind LMS, and
// diffusers' begin-index rule for img2img. Reference values: diffusers' fixtures (sigmas) and closed forms.
using DiffuSharp.Schedulers;
using Xunit;

namespace DiffuSharp.Tests.Schedulers;

public class SchedulerFactoryTests
{
    // Stable Diffusion 1.5's scheduler_config.json (every key explicit, timestep_spacing "leading" included)
    static readonly SchedulerConfig Sd15 = SchedulerConfig.FromJson("""
        {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "clip_sample": false, "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": false,
         "skip_prk_steps": true, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": null}
        """, "sd15 scheduler_config.json");

    [Theory]
    [InlineData("ddim", "DDIMScheduler", false)]
    [InlineData("euler_a", "EulerAncestralDiscreteScheduler", false)]
    [InlineData("Euler a", "EulerAncestralDiscreteScheduler", false)]
    [InlineData("DPM++ 2M Karras", "DPMSolverMultistepScheduler", true)]
    [InlineData("LMS Karras", "LMSDiscreteScheduler", true)]
    [InlineData("kdpm2_a", "KDPM2AncestralDiscreteScheduler", false)]
    [InlineData("HeunDiscreteScheduler", "HeunDiscreteScheduler", false)]
    public void Names_resolve_to_classes(string name, string className, bool karras)
    {
        var c = SchedulerFactory.ConfigFor(name, Sd15);
        Assert.Equal(className, c.ClassName);
        Assert.Equal(karras, c.UseKarrasSigmas);
        Assert.Equal(1, c.StepsOffset);                    // carried over from the model's config, as from_config does
        Assert.Equal(BetaSchedule.ScaledLinear, c.BetaSchedule);
    }

    [Fact]
    public void Cli_names_set_the_solver_options()
    {
        Assert.Equal(3, SchedulerFactory.ConfigFor("dpm++3m", Sd15).SolverOrder);
        Assert.Equal(AlgorithmType.SdeDpmSolverPlusPlus, SchedulerFactory.ConfigFor("dpm++2m_sde", Sd15).AlgorithmType);
        Assert.True(SchedulerFactory.ConfigFor("euler", Sd15, karras: true).UseKarrasSigmas);
        Assert.Equal(15, SchedulerFactory.Samplers.Count);
    }

    [Fact]
    public void Unknown_sampler_lists_the_names()
    {
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.ConfigFor("dpm++9m", Sd15));
        Assert.Contains("'dpm++9m'", e.Message);
        Assert.Contains("euler_a", e.Message);
    }

    [Fact]
    public void Every_class_of_ours_builds_and_takes_a_step()
    {
        foreach (var s in SchedulerFactory.Samplers.Take(9))
        {
            var sched = SchedulerFactory.Create(s.CliName, Sd15);
            sched.SetTimesteps(10);
            var x = Tensor.Full([1, 2, 2, 2], (float)sched.InitNoiseSigma);
            var t = sched.Timesteps[0];
            var y = sched.Step(Tensor.Ones(1, 2, 2, 2), t, sched.ScaleModelInput(x, t), Tensor.Zeros(1, 2, 2, 2)).PrevSample;
            Assert.All(y.ToArray(), v => Assert.True(float.IsFinite(v), s.CliName));
        }
    }

    [Fact]
    public void Quadrature_integrates_smooth_functions_and_polynomials()
    {
        Assert.Equal(2.0, Quadrature.Integrate(Math.Sin, 0, Math.PI), 12);
        Assert.Equal(Math.E - 1, Quadrature.Integrate(Math.Exp, 0, 1), 13);
        // ∫_3^1 (x³ − 2x) dx = −(1/4 − 1 − 81/4 + 9) = −(−12) 
        Assert.Equal(-12.0, Quadrature.Integrate(x => x * x * x - 2 * x, 3, 1), 12);
        Assert.Equal(2.0 / 3.0, Quadrature.Integrate(Math.Sqrt, 0, 1), 8);   // singular derivative at 0: bisection
    }

    [Fact]
    public void Lms_first_order_coefficient_is_the_sigma_step()
    {
        // order 1: ℓ_0 ≡ 1, so the coefficient is σ_{i+1} − σ_i: LMS's first step is Euler's
        var lms = new LmsDiscreteScheduler(SchedulerConfig.DefaultsFor("LMSDiscreteScheduler"));
        lms.SetTimesteps(10);
        var s = lms.Sigmas!;
        Assert.Equal(s[4] - s[3], lms.LmsCoefficient(1, 3, 0), 12);
        // order 2: ∫ (τ − σ_{i−1})/(σ_i − σ_{i−1}) over [σ_i, σ_{i+1}] in closed form
        double a = s[3], b = s[4], p = s[2];
        double expected = ((b - p) * (b - p) - (a - p) * (a - p)) / (2 * (a - p));
        Assert.Equal(expected, lms.LmsCoefficient(2, 3, 0), 10);
    }

    [Fact]
    public void Begin_index_picks_the_sigma_for_img2img_add_noise()
    {
        // diffusers: after set_begin_index(k), add_noise before the first step uses σ_k whatever timestep is given
        using var f = new FixtureFile("euler_sd15");
        var sigmas = f.Sigmas;
        var euler = SchedulerFactory.Create("euler", Sd15);
        euler.SetTimesteps(10);
        euler.SetBeginIndex(4);
        var x0 = Tensor.Zeros(1, 1, 1, 1);
        var noised = euler.AddNoise(x0, Tensor.Ones(1, 1, 1, 1), [euler.Timesteps[4]]);
        Assert.Equal(sigmas[4], noised.Item(), 5);
        // and the first step runs at index 4: the model input is x / √(σ_4² + 1)
        var scaled = euler.ScaleModelInput(Tensor.Ones(1, 1, 1, 1), euler.Timesteps[4]);
        Assert.Equal(1 / Math.Sqrt(sigmas[4] * sigmas[4] + 1), scaled.Item(), 5);
    }

    sealed class FixtureFile(string name) : IDisposable
    {
        public float[] Sigmas { get; } = SchedulerFixture.Open(name).ReadFloat32("sigmas");
        public void Dispose() { }
    }
}

// What the fixtures do not pin down for DPM-Solver(++), DEIS and UniPC: a learned-variance model's variance half is
// ignored, the configurations diffusers refuses are refused with a message naming the key, the sampler names map to
// the classes of diffusers' A1111 table (docs/source/en/api/schedulers/overview.md), and add_noise before
// set_timesteps (training use) is the forward process that diffusers' DDPMScheduler.add_noise computes.
using DiffuSharp.Schedulers;
using Xunit;

namespace DiffuSharp.Tests.Schedulers;

public class MultistepSolverBehaviourTests
{
    static SchedulerConfig Config(string className, string json = "{}") => SchedulerConfig.FromJson(json, "test", className);

    static Tensor RandN(Rng rng, params int[] shape) => Tensor.RandN(shape, rng);

    [Theory]
    [InlineData("DPMSolverMultistepScheduler", """{"variance_type": "learned_range", "solver_order": 3}""")]
    [InlineData("DPMSolverMultistepScheduler", """{"algorithm_type": "sde-dpmsolver++", "variance_type": "learned"}""")]
    [InlineData("DPMSolverSinglestepScheduler", """{"variance_type": "learned_range", "solver_order": 3}""")]
    [InlineData("DEISMultistepScheduler", """{"solver_order": 3}""")]
    [InlineData("UniPCMultistepScheduler", """{"solver_order": 3}""")]
    public void Learned_variance_half_is_ignored(string className, string json)
    {
        // the same run fed (B, C) ε and (B, 2C) (ε, junk): identical samples, so only the ε half is read
        var plain = SchedulerFactory.Create(Config(className, json));
        var learned = SchedulerFactory.Create(Config(className, json));
        plain.SetTimesteps(6);
        learned.SetTimesteps(6);
        var rng = new Rng(7);
        Tensor a = RandN(rng, 2, 1, 4, 4), b = a;
        foreach (double t in plain.Timesteps)
        {
            var eps = RandN(rng, 2, 1, 4, 4);
            var junk = RandN(rng, 2, 1, 4, 4) * 5.0;
            var noise = RandN(rng, 2, 1, 4, 4);
            a = plain.Step(eps, t, a, noise).PrevSample;
            b = learned.Step(Tensor.Concat([eps, junk], 1), t, b, noise).PrevSample;
            Assert.Equal(a.ToArray(), b.ToArray());
        }
    }

    [Theory]
    [InlineData("DPMSolverMultistepScheduler", """{"algorithm_type": "dpmsolver"}""", "final_sigmas_type")]
    [InlineData("DPMSolverMultistepScheduler", """{"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "zero"}""", "final_sigmas_type")]
    [InlineData("DPMSolverMultistepScheduler", """{"algorithm_type": "sde-dpmsolver++", "solver_order": 3}""", "solver_order")]
    [InlineData("DPMSolverMultistepScheduler", """{"solver_order": 4}""", "solver_order")]
    [InlineData("DPMSolverSinglestepScheduler", """{"algorithm_type": "sde-dpmsolver++"}""", "algorithm_type")]
    [InlineData("DPMSolverSinglestepScheduler", """{"algorithm_type": "dpmsolver"}""", "final_sigmas_type")]
    [InlineData("DEISMultistepScheduler", """{"solver_order": 0}""", "solver_order")]
    [InlineData("UniPCMultistepScheduler", """{"solver_order": 0}""", "solver_order")]
    public void Refused_configs_name_the_key(string className, string json, string key)
    {
        var e = Assert.ThrowsAny<Exception>(() => SchedulerFactory.Create(Config(className, json)));
        Assert.True(e is ArgumentException or InvalidDataException, e.GetType().Name);
        Assert.Contains(key, e.Message);
    }

    [Theory]
    [InlineData("dpm++2m", typeof(DpmSolverMultistepScheduler), "dpmsolver++", 2, false)]
    [InlineData("dpm++2m_sde", typeof(DpmSolverMultistepScheduler), "sde-dpmsolver++", 2, false)]
    [InlineData("dpm++3m", typeof(DpmSolverMultistepScheduler), "dpmsolver++", 3, false)]
    [InlineData("DPM++ 2M Karras", typeof(DpmSolverMultistepScheduler), "dpmsolver++", 2, true)]
    [InlineData("DPM++ 2M SDE Karras", typeof(DpmSolverMultistepScheduler), "sde-dpmsolver++", 2, true)]
    [InlineData("DPM++ SDE", typeof(DpmSolverSinglestepScheduler), "dpmsolver++", 2, false)]
    [InlineData("dpm_single", typeof(DpmSolverSinglestepScheduler), "dpmsolver++", 2, false)]
    [InlineData("deis", typeof(DeisMultistepScheduler), "deis", 2, false)]
    [InlineData("unipc", typeof(UniPcMultistepScheduler), null, 2, false)]
    [InlineData("UniPCMultistepScheduler", typeof(UniPcMultistepScheduler), null, 2, false)]
    [InlineData("DPMSolverMultistepScheduler", typeof(DpmSolverMultistepScheduler), "dpmsolver++", 2, false)]
    public void Sampler_names_build_diffusers_classes(string name, Type type, string? algorithm, int order, bool karras)
    {
        var baseConfig = SchedulerConfig.DefaultsFor("DDIMScheduler") with { BetaSchedule = BetaSchedule.SquaredCosCapV2 };
        var s = SchedulerFactory.Create(name, baseConfig);
        Assert.IsType(type, s);
        Assert.Equal(BetaSchedule.SquaredCosCapV2, s.Config.BetaSchedule);       // the model's schedule carries over
        Assert.Equal(order, s.Config.SolverOrder);
        Assert.Equal(karras, s.Config.UseKarrasSigmas);
        if (algorithm is not null) Assert.Equal(algorithm, SchedulerKeys.Spell(s.Config.AlgorithmType));
    }

    [Theory]
    [InlineData("DPMSolverMultistepScheduler")]
    [InlineData("DPMSolverSinglestepScheduler")]
    [InlineData("DEISMultistepScheduler")]
    [InlineData("UniPCMultistepScheduler")]
    public void AddNoise_before_SetTimesteps_is_the_forward_process(string className)
    {
        // diffusers' initial state holds the σ of all T training timesteps; DDPM's add_noise is √ᾱ x0 + √(1 − ᾱ) ε
        const string json = """{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}""";
        var solver = SchedulerFactory.Create(Config(className, json));
        var ddpm = SchedulerFactory.Create(Config("DDPMScheduler", json));
        var rng = new Rng(3);
        var x0 = RandN(rng, 4, 3, 2, 2);
        var noise = RandN(rng, 4, 3, 2, 2);
        double[] t = [0, 1, 500, 999];
        var ours = solver.AddNoise(x0, noise, t).ToArray();
        var reference = ddpm.AddNoise(x0, noise, t).ToArray();
        var r = SchedulerReplay.Measure("add_noise", [.. ours.Select(v => (double)v)], [.. reference.Select(v => (double)v)], 1e-6);
        Assert.True(r.Passed, $"rel {r.RelErr:E2}");
    }
}

// scheduler_config.json as diffusers 0.27.2 reads and writes it: from_config of Stable Diffusion 1.5's PNDM config
// into every class, chains of from_config (which keys travel, which stay defaults), save + re-read, and the errors
// for unknown keys, unsupported values and wrong JSON types. Reference: Fixtures/diffusers/scheduler_configs.json,
// written by diffusers itself (make_scheduler_fixtures.py).
using System.Text.Json;
using DiffuSharp.Schedulers;
using Xunit;

namespace DiffuSharp.Tests.Schedulers;

public class SchedulerConfigTests
{
    static readonly JsonElement Reference =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Diffusers, "scheduler_configs.json"))).RootElement;

    static string Sd15Pndm => Reference.GetProperty("sd15_pndm").GetString()!;

    public static IEnumerable<object[]> Classes => SchedulerKeys.ClassNames.Select(c => new object[] { c });

    [Fact]
    public void Sd15_pndm_config_round_trips_byte_for_byte()
    {
        var c = SchedulerConfig.FromJson(Sd15Pndm, "scheduler_config.json");
        Assert.Equal("PNDMScheduler", c.ClassName);
        Assert.True(c.SkipPrkSteps);
        Assert.False(c.SetAlphaToOne);
        Assert.Equal(BetaSchedule.ScaledLinear, c.BetaSchedule);
        Assert.Equal(1, c.StepsOffset);
        Assert.Equal(Sd15Pndm, c.ToJson());
    }

    [Theory, MemberData(nameof(Classes))]
    public void From_config_of_sd15_pndm_writes_what_diffusers_writes(string className)
    {
        string expected = Reference.GetProperty("from_sd15_pndm").GetProperty(className).GetString()!;
        var c = SchedulerConfig.FromJson(Sd15Pndm, "scheduler_config.json").As(className);
        Assert.Equal(expected, c.ToJson());
        // and reading diffusers' own output gives the same config
        Assert.Equal(c with { DefaultedKeys = null }, SchedulerConfig.FromJson(expected, "expected") with { DefaultedKeys = null });
    }

    [Fact]
    public void From_config_chains_carry_only_explicit_keys_as_diffusers()
    {
        foreach (var chain in Reference.GetProperty("chains").EnumerateArray())
        {
            var path = chain.GetProperty("path").EnumerateArray().Select(e => e.GetString()!).ToArray();
            var c = path[0] == "sd15_pndm" ? SchedulerConfig.FromJson(Sd15Pndm, "sd15") : SchedulerConfig.DefaultsFor(path[0]);
            foreach (var cls in path.Skip(1)) c = c.As(cls);
            Assert.True(chain.GetProperty("json").GetString() == c.ToJson(), $"chain {string.Join(" -> ", path)}:\n{c.ToJson()}");
        }
    }

    [Fact]
    public void Keys_listed_in_use_default_values_do_not_travel()
    {
        // the euler_default fixture's config is EulerDiscreteScheduler()'s: every key in _use_default_values, so
        // DDIMScheduler.from_config of it keeps DDIM's own defaults ("leading", not Euler's "linspace")
        var euler = SchedulerConfig.FromJson(SchedulerFixture.Open("euler_default").Metadata["config"], "euler_default", "EulerDiscreteScheduler");
        Assert.Equal(TimestepSpacing.Linspace, euler.TimestepSpacing);
        var chain = Reference.GetProperty("chains").EnumerateArray()
            .Single(c => c.GetProperty("path").EnumerateArray().Select(e => e.GetString()).SequenceEqual(["EulerDiscreteScheduler", "DDIMScheduler"]));
        Assert.Equal(chain.GetProperty("json").GetString(), euler.As("DDIMScheduler").ToJson());
    }

    [Fact]
    public void Saved_config_rereads_equal()
    {
        var configs = new[]
        {
            SchedulerConfig.DefaultsFor("DPMSolverSinglestepScheduler"),     // lambda_min_clipped = -Infinity
            SchedulerConfig.DefaultsFor("UniPCMultistepScheduler") with { DisableCorrector = [0, 3], SolverOrder = 3 },
            SchedulerConfig.DefaultsFor("EulerDiscreteScheduler") with { SigmaMin = 0.0292, SigmaMax = 14.6, UseKarrasSigmas = true },
            SchedulerConfig.DefaultsFor("DDPMScheduler") with { NumTrainTimesteps = 4, TrainedBetas = [0.1, 0.2, 0.3, 0.4], VarianceType = VarianceType.LearnedRange },
            SchedulerConfig.FromJson(Sd15Pndm, "sd15").As("EulerAncestralDiscreteScheduler"),
        };
        string dir = Path.Combine(Path.GetTempPath(), "diffusharp-sched-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var c in configs)
            {
                string path = Path.Combine(dir, "scheduler_config.json");
                c.Save(path);
                var back = SchedulerConfig.Load(path);
                Assert.Equal(c with { DefaultedKeys = null }, back with { DefaultedKeys = null });
                Assert.Equal(c.ToJson(), back.ToJson());
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Unknown_key_is_an_error_naming_key_and_file()
    {
        var e = Assert.Throws<InvalidDataException>(() =>
            SchedulerConfig.FromJson("""{"_class_name": "DDIMScheduler", "beta_strat": 0.001}""", "my/scheduler_config.json"));
        Assert.Contains("'beta_strat'", e.Message);
        Assert.Contains("my/scheduler_config.json", e.Message);
    }

    [Fact]
    public void Key_of_another_class_is_kept_not_read()
    {
        // diffusers' from_config ignores solver_order for DDIM and keeps it in the saved config
        var c = SchedulerConfig.FromJson("""{"_class_name": "DDIMScheduler", "solver_order": 3}""", "f.json");
        Assert.Equal(2, c.SolverOrder);
        Assert.Equal("3", c.OtherKeys["solver_order"]);
        Assert.Contains("\"solver_order\": 3", c.ToJson());
    }

    [Theory]
    [InlineData("beta_schedule", "\"cosine\"", "'beta_schedule'", "\"cosine\"")]
    [InlineData("prediction_type", "\"x0\"", "'prediction_type'", "\"x0\"")]
    [InlineData("timestep_spacing", "\"uniform\"", "'timestep_spacing'", "\"uniform\"")]
    [InlineData("variance_type", "\"fixed\"", "'variance_type'", "\"fixed\"")]
    public void Unsupported_value_is_an_error_naming_key_and_value(string key, string value, string keyText, string valueText)
    {
        var e = Assert.Throws<InvalidDataException>(() =>
            SchedulerConfig.FromJson($$"""{"_class_name": "DDPMScheduler", "{{key}}": {{value}}}""", "cfg.json"));
        Assert.Contains(keyText, e.Message);
        Assert.Contains(valueText, e.Message);
        Assert.Contains("cfg.json", e.Message);
    }

    [Theory]
    [InlineData("num_train_timesteps", "\"1000\"")]
    [InlineData("num_train_timesteps", "1000.5")]
    [InlineData("beta_start", "\"0.1\"")]
    [InlineData("clip_sample", "1")]
    [InlineData("trained_betas", "[0.1, \"x\"]")]
    [InlineData("steps_offset", "null")]
    public void Wrong_json_type_is_an_error_naming_the_key(string key, string value)
    {
        var e = Assert.Throws<InvalidDataException>(() =>
            SchedulerConfig.FromJson($$"""{"_class_name": "DDPMScheduler", "{{key}}": {{value}}}""", "cfg.json"));
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains("cfg.json", e.Message);
    }

    [Fact]
    public void Unknown_class_and_bad_json_are_errors()
    {
        Assert.Contains("'FooScheduler'", Assert.Throws<InvalidDataException>(() => SchedulerConfig.FromJson("""{"_class_name": "FooScheduler"}""", "a.json")).Message);
        Assert.Contains("a.json", Assert.Throws<InvalidDataException>(() => SchedulerConfig.FromJson("{", "a.json")).Message);
        Assert.Contains("_class_name", Assert.Throws<InvalidDataException>(() => SchedulerConfig.FromJson("{}", "a.json")).Message);
    }
}

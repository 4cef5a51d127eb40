// The model folder's own respacing (issue 14, "Must show" 5): a folder whose model.json says "ddim10", sampled with
// --sampler ddim and no step flag, must equal improved-diffusion's ddim_sample_loop with that respacing from the same
// noise. The fixture (Fixtures/respacing_ddim10, made by make_respacing_ddim10.py with improved-diffusion's own
// unet.py / respace.py) holds the folder, the noise and the reference's x_0.
using DiffuSharp.IO;
using DiffuSharp.Tests.Training;
using Xunit;
using static DiffuSharp.Tests.Cli.TrainSampleEndToEndTests;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class SampleRespacingTests
{
    static string Folder => Path.Combine(TestPaths.Fixtures, "respacing_ddim10");

    static float[] Sample(string dir, params string[] extra) => Run(dir, ["--sampler", "ddim", .. extra]);

    /// <summary>`sample` on the fixture folder from its noise, the samples read back from --save-npy.</summary>
    internal static float[] Run(string dir, string[] extra)
    {
        string npy = Path.Combine(dir, $"s{Guid.NewGuid():N}.npy");
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli([.. new[] { "sample", "--model", Folder, "--noise", Path.Combine(Folder, "noise.npy"),
            "--out", Path.Combine(dir, "grid.png"), "--save-npy", npy }, .. extra]);
        Assert.True(code == 0, stderr);
        return Npy.ReadFloat32(npy).Data;
    }

    /// <summary>max |a − b| / max |b|.</summary>
    internal static double RelErr(float[] a, float[] b)
    {
        Assert.Equal(b.Length, a.Length);
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++) { num = Math.Max(num, Math.Abs(a[i] - b[i])); den = Math.Max(den, Math.Abs(b[i])); }
        return num / den;
    }

    [Fact]
    public void No_step_flag_samples_with_the_folders_ddim10_as_improved_diffusion_does()
    {
        string dir = TrainingFixtures.TempFolder("respacing");
        try
        {
            var expected = Npy.ReadFloat32(Path.Combine(Folder, "expected.npy")).Data;
            double err = RelErr(Sample(dir), expected);
            Assert.True(err <= 1e-4, $"no flag: rel err {err:E2} against ddim_sample_loop with \"ddim10\"");
            // --respacing names the same spacing explicitly.
            Assert.True(RelErr(Sample(dir, "--respacing", "ddim10"), expected) <= 1e-4);
            // --steps 10 overrides the folder: section spacing "10" (t = 0, 111, …, 999) is another trajectory.
            double other = RelErr(Sample(dir, "--steps", "10"), expected);
            Assert.True(other > 1e-2, $"--steps 10 should differ from \"ddim10\", rel err {other:E2}");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("ddimx", "--respacing \"ddimx\" is not a valid respacing")]
    [InlineData("10,abc", "\"abc\" is not a non-negative integer")]
    [InlineData("2000", "cannot divide a section of 1000 steps into 2000")]
    [InlineData("ddim3000", "cannot take exactly 3000 of 1000 steps")]
    public void Malformed_respacing_is_one_error_line(string spec, string expected)
        => AssertOneLineError(["sample", "--model", Folder, "--respacing", spec, "--out", Path.Combine(Path.GetTempPath(), "never.png")], expected);
}

/// <summary>diffusers' schedulers on an improved-diffusion model folder through `sample --sampler NAME`.</summary>
[Collection("Parallelism")]
public sealed class SampleSchedulerTests
{
    static string Folder => Path.Combine(TestPaths.Fixtures, "respacing_ddim10");
    static float[] Sample(string dir, params string[] extra) => SampleRespacingTests.Run(dir, extra);
    static double RelErr(float[] a, float[] b) => SampleRespacingTests.RelErr(a, b);

    [Fact]
    public void DDIMScheduler_on_the_models_schedule_is_improved_diffusions_ddim10_loop()
    {
        // Two implementations: diffusers' DDIMScheduler (float32 tables, "leading" t = 0, 100, …, 900, x0 clipped and
        // ε taken from it) and improved-diffusion's own ddim_sample_loop with "ddim10", recorded by improved-diffusion.
        string dir = TrainingFixtures.TempFolder("sched-ddim");
        try
        {
            var expected = Npy.ReadFloat32(Path.Combine(Folder, "expected.npy")).Data;
            double err = RelErr(Sample(dir, "--sampler", "DDIMScheduler", "--steps", "10"), expected);
            Assert.True(err <= 2e-5, $"DDIMScheduler against ddim_sample_loop: rel err {err:E2}");
            // no step flag: the folder's "ddim10" gives the count, 10 steps
            Assert.True(RelErr(Sample(dir, "--sampler", "DDIM"), expected) <= 2e-5);
            // trailing spacing is another set of timesteps, another sample
            Assert.True(RelErr(Sample(dir, "--sampler", "DDIMScheduler", "--steps", "10", "--spacing", "trailing"), expected) > 1e-3);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("dpm++2m", false)]
    [InlineData("dpm++2m", true)]
    [InlineData("euler_a", false)]
    [InlineData("heun", false)]
    [InlineData("unipc", false)]
    public void Every_sampler_runs_and_is_a_pure_function_of_noise_and_seed(string sampler, bool karras)
    {
        string dir = TrainingFixtures.TempFolder("sched-any");
        try
        {
            string[] args = ["--sampler", sampler, "--steps", "6", "--seed", "3", .. karras ? new[] { "--karras" } : []];
            var a = Sample(dir, args);
            var b = Sample(dir, args);
            Assert.Equal(a, b);
            Assert.All(a, v => Assert.True(float.IsFinite(v)));
            // not DDIM's sample: another solver, another result
            var ddim = Npy.ReadFloat32(Path.Combine(Folder, "expected.npy")).Data;
            Assert.True(RelErr(a, ddim) > 1e-4);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_scheduler_refuses_respacing()
        => AssertOneLineError(["sample", "--model", Folder, "--sampler", "unipc", "--respacing", "ddim10", "--out", Path.Combine(Path.GetTempPath(), "never.png")],
            "--respacing sets improved-diffusion's ddim/ddpm timesteps");
}

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

    static float[] Sample(string dir, params string[] extra)
    {
        string npy = Path.Combine(dir, $"s{Guid.NewGuid():N}.npy");
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli([.. new[] { "sample", "--model", Folder, "--sampler", "ddim", "--noise", Path.Combine(Folder, "noise.npy"),
            "--out", Path.Combine(dir, "grid.png"), "--save-npy", npy }, .. extra]);
        Assert.True(code == 0, stderr);
        return Npy.ReadFloat32(npy).Data;
    }

    /// <summary>max |a − b| / max |b|.</summary>
    static double RelErr(float[] a, float[] b)
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

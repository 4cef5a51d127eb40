// The replay harness of the diffusers scheduler fixtures (Fixtures/diffusers/sched_*.safetensors, made by diffusers
// 0.27.2 itself; format: Fixtures/diffusers/README.upstream.md). The comparison logic is the library's
// SchedulerReplay, so `diffusharp verify-diffusers` checks exactly what these tests check.
using DiffuSharp.IO;
using DiffuSharp.Schedulers;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Schedulers;

internal static class SchedulerFixture
{
    /// <summary>The fixture names (sched_CASE.safetensors → CASE) whose case starts with one of the prefixes.</summary>
    public static IEnumerable<object[]> Cases(params string[] prefixes) =>
        Directory.EnumerateFiles(TestPaths.Diffusers, "sched_*.safetensors")
            .Select(p => Path.GetFileNameWithoutExtension(p)["sched_".Length..])
            .Where(c => prefixes.Any(pre => c.StartsWith(pre, StringComparison.Ordinal)))
            .Order(StringComparer.Ordinal)
            .Select(c => new object[] { c });

    public static SafeTensorsFile Open(string caseName) => SafeTensorsFile.Open(Path.Combine(TestPaths.Diffusers, $"sched_{caseName}.safetensors"));

    /// <summary>Replays the case, logs every comparison, asserts all within 1e-5 relative.</summary>
    public static void AssertReplays(string caseName, ITestOutputHelper output)
    {
        var results = SchedulerReplay.Run(Open(caseName));
        foreach (var r in results) output.WriteLine($"{r.Tensor,-36} rel {r.RelErr:E2} abs {r.MaxAbs:E2}{(r.Passed ? "" : "  FAIL")}");
        Assert.Contains(results, r => r.Tensor.EndsWith(".prev_sample", StringComparison.Ordinal));
        Assert.Contains(results, r => r.Tensor == "add_noise.result");
        var failed = results.Where(r => !r.Passed).Select(r => $"{r.Tensor}: rel {r.RelErr:E2}").ToList();
        Assert.True(failed.Count == 0, $"sched_{caseName}: {string.Join("; ", failed)}");
    }
}

// 1,000 seeded, structure-aware mutated inputs per parser (src/DiffuSharp.Fuzz): each must parse or fail with a clean
// error (InvalidDataException or a missing-file exception naming the file), never anything else. scripts/fuzz.sh runs
// the same targets with 100,000 inputs each.
using DiffuSharp.Fuzz;
using Xunit;

namespace DiffuSharp.Tests.Fuzz;

/// <summary>The fuzz runs keep both cores busy for most of a minute: run alone, so they do not starve the tests that
/// time signals against a training child process (KillResumeTests, MpiTrainingTests).</summary>
[CollectionDefinition(nameof(FuzzCollection), DisableParallelization = true)]
public sealed class FuzzCollection;

[Collection(nameof(FuzzCollection))]
public sealed class FuzzTests : IDisposable
{
    const int Inputs = 1000, Seed = 20261207;
    readonly string _work = Fuzzer.WorkFolder();

    public void Dispose() => Directory.Delete(_work, recursive: true);

    public static IEnumerable<object[]> TargetNames => Targets.All.Select(t => new object[] { t.Name });

    [Theory, MemberData(nameof(TargetNames))]
    public void Every_mutated_input_parses_or_fails_cleanly(string target)
    {
        var report = Fuzzer.Run(Targets.Get(target), Inputs, Seed, _work);
        Assert.Equal(Inputs, report.Parsed + report.CleanErrors + report.Bugs);
        Assert.True(report.Bugs == 0, $"{target}: {report.Bugs} of {Inputs} inputs escaped as something else:\n" +
            string.Join("\n", report.Findings.Select(f => $"{f.Count}× {f.Signature}: {f.Message}\n  input (base64): {Convert.ToBase64String(f.Input)}")));
        Assert.True(report.Parsed > 0 && report.CleanErrors > 0, $"{target}: the mutations should both keep some inputs valid and break others");
    }

    [Theory, MemberData(nameof(TargetNames))]
    public void Every_seed_parses(string target)
    {
        var t = Targets.Get(target);
        string dir = Path.Combine(_work, "seeds");
        Directory.CreateDirectory(dir);
        t.Setup?.Invoke(dir);
        foreach (var seed in t.Seeds)
        {
            var (outcome, error) = Fuzzer.RunOne(t, seed, Path.Combine(dir, t.FileName));
            Assert.True(outcome == Outcome.Parsed, $"{target}: a seed does not parse: {error}");
        }
    }

    [Fact]
    public void The_same_seed_gives_the_same_inputs()
    {
        var t = Targets.Get("PNG");
        var a = Fuzzer.Run(t, 200, 7, _work);
        var b = Fuzzer.Run(t, 200, 7, _work);
        Assert.Equal((a.Parsed, a.CleanErrors), (b.Parsed, b.CleanErrors));
    }

    [Fact]
    public void A_leaked_exception_or_a_message_without_the_file_is_counted_as_a_bug()
    {
        Assert.Equal(Outcome.Bug, Fuzzer.Classify(new IndexOutOfRangeException("x.png"), "x.png"));
        Assert.Equal(Outcome.Bug, Fuzzer.Classify(new InvalidDataException("not a valid PNG"), "x.png"));
        Assert.Equal(Outcome.CleanError, Fuzzer.Classify(new InvalidDataException("/a/x.png: not a valid PNG"), "/a/x.png"));
        var t = new FuzzTarget("leaky", "x.bin", [[1]], (b, _) => b, (_, _) => throw new OverflowException("boom"), InMemory: true);
        Assert.Equal(1, Fuzzer.Run(t, 5, 1, _work).Bugs > 0 ? 1 : 0);
    }
}

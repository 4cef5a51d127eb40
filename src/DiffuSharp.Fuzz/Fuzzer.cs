// The fuzz loop: seeded mutations of valid inputs fed to one parser each, every outcome classified as parsed,
// a clean error (InvalidDataException or a missing-file exception whose message names the file), or anything else,
// which is a bug: a .NET exception name reaching the user, a message that loses the file, an out-of-memory.
// Deterministic: the same seed gives the same inputs on every machine (System.Random with a seed is stable).
using System.Diagnostics;
using DiffuSharp.Data;

namespace DiffuSharp.Fuzz;

/// <summary>What one input did to a parser.</summary>
public enum Outcome { Parsed, CleanError, Bug }

/// <summary>
/// One parser under fuzz. The harness writes each input to <c>dir/FileName</c> (after <see cref="Setup"/> has put any
/// companion files in dir) and calls <see cref="Parse"/> with that path; in-memory parsers read the bytes and use the
/// path only as the source name. <see cref="Mutate"/> returns a new input from a seed (structure-aware).
/// </summary>
public sealed record FuzzTarget(
    string Name,
    string FileName,
    IReadOnlyList<byte[]> Seeds,
    Func<byte[], Random, byte[]> Mutate,
    Action<byte[], string> Parse,
    Action<string>? Setup = null,
    bool InMemory = false,
    bool FolderNamed = false);   // an error may name the folder the file is in (the manifest names the file it lists)

/// <summary>A distinct failure: its exception type and top stack frame, the smallest input seen, how often.</summary>
public sealed record Finding(string Signature, string Type, string Message, byte[] Input, int Count);

/// <summary>Counts for one parser.</summary>
public sealed record FuzzReport(string Target, int Inputs, int Parsed, int CleanErrors, int DecoderFaults, int Bugs,
    double SlowestMs, double TotalSeconds, IReadOnlyList<Finding> Findings, byte[]? SlowestInput = null);

public static class Fuzzer
{
    /// <summary>Runs <paramref name="inputs"/> mutated inputs (the seeds themselves first) through the target.</summary>
    public static FuzzReport Run(FuzzTarget target, int inputs, int seed, string workRoot)
    {
        string dir = Path.Combine(workRoot, Sanitize(target.Name));
        Directory.CreateDirectory(dir);
        target.Setup?.Invoke(dir);
        string path = Path.Combine(dir, target.FileName);
        var rng = new Random(seed ^ StableHash(target.Name));
        int parsed = 0, clean = 0, decoderFaults = 0, bugs = 0;
        double slowest = 0;
        byte[]? slowestInput = null;
        var findings = new Dictionary<string, Finding>();
        var total = Stopwatch.StartNew();
        for (int i = 0; i < inputs; i++)
        {
            byte[] seedInput = target.Seeds[rng.Next(target.Seeds.Count)];
            byte[] input = i < target.Seeds.Count ? target.Seeds[i] : target.Mutate(seedInput, rng);
            var sw = Stopwatch.StartNew();
            var (outcome, error) = RunOne(target, input, path);
            if (sw.Elapsed.TotalMilliseconds > slowest) (slowest, slowestInput) = (sw.Elapsed.TotalMilliseconds, input);
            switch (outcome)
            {
                case Outcome.Parsed: parsed++; break;
                case Outcome.CleanError:
                    clean++;
                    if (error!.Message.Contains("the decoder failed (", StringComparison.Ordinal)) decoderFaults++;
                    break;
                default:
                    bugs++;
                    string sig = Signature(error!);
                    findings[sig] = findings.TryGetValue(sig, out var f)
                        ? f with { Count = f.Count + 1, Input = input.Length < f.Input.Length ? input : f.Input }
                        : new Finding(sig, error!.GetType().Name, error.Message, input, 1);
                    break;
            }
        }
        return new FuzzReport(target.Name, inputs, parsed, clean, decoderFaults, bugs, slowest, total.Elapsed.TotalSeconds, [.. findings.Values], slowestInput);
    }

    /// <summary>Feeds one input; the exception (null when it parsed) and its classification.</summary>
    public static (Outcome Outcome, Exception? Error) RunOne(FuzzTarget target, byte[] input, string path)
    {
        if (!target.InMemory) File.WriteAllBytes(path, input);
        try
        {
            target.Parse(input, path);
            return (Outcome.Parsed, null);
        }
        catch (Exception e)
        {
            return (Classify(e, target.FolderNamed ? Path.GetDirectoryName(path)! : path), e);
        }
    }

    /// <summary>Clean: our error types with a message that names <paramref name="name"/> (the file, or its folder).</summary>
    public static Outcome Classify(Exception e, string name)
        => (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException or DatasetNotFoundException)
           && e.Message.Contains(name, StringComparison.Ordinal) ? Outcome.CleanError : Outcome.Bug;

    /// <summary>
    /// The smallest input (bytes removed in ever smaller blocks) that still fails with the same signature, for a
    /// regression test. At most <paramref name="maxTries"/> parser calls.
    /// </summary>
    public static byte[] Minimise(FuzzTarget target, byte[] input, string workRoot, int maxTries = 3000)
    {
        string dir = Path.Combine(workRoot, Sanitize(target.Name) + "-min");
        Directory.CreateDirectory(dir);
        target.Setup?.Invoke(dir);
        string path = Path.Combine(dir, target.FileName);
        var (o0, e0) = RunOne(target, input, path);
        if (o0 != Outcome.Bug) return input;
        string sig = Signature(e0!);
        int tries = 0;
        for (int block = Math.Max(1, input.Length / 2); block >= 1 && tries < maxTries; block /= 2)
            for (int at = 0; at + block <= input.Length && tries < maxTries;)
            {
                byte[] candidate = [.. input.AsSpan(0, at), .. input.AsSpan(at + block)];
                tries++;
                var (o, e) = RunOne(target, candidate, path);
                if (o == Outcome.Bug && Signature(e!) == sig) input = candidate;
                else at += block;
            }
        return input;
    }

    /// <summary>A fresh scratch folder, in memory (/dev/shm) where there is one: the file parsers read thousands of files.</summary>
    public static string WorkFolder()
        => Directory.Exists("/dev/shm") ? Directory.CreateDirectory(Path.Combine("/dev/shm", $"diffusharp-fuzz-{Guid.NewGuid():N}")).FullName
            : Directory.CreateTempSubdirectory("diffusharp-fuzz-").FullName;

    /// <summary>Exception type and the first frame of its stack trace inside DiffuSharp (or the first at all).</summary>
    public static string Signature(Exception e)
    {
        var frames = (e.StackTrace ?? "").Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        string top = frames.FirstOrDefault(f => f.Contains("DiffuSharp.", StringComparison.Ordinal) && !f.Contains("DiffuSharp.Fuzz", StringComparison.Ordinal))
            ?? frames.FirstOrDefault() ?? "";
        int paren = top.IndexOf('(');
        return $"{e.GetType().Name} at {(paren > 0 ? top[..paren] : top).Replace("at ", "")}";
    }

    static string Sanitize(string name) => string.Concat(name.Select(c => char.IsLetterOrDigit(c) ? c : '-'));

    static int StableHash(string s)
    {
        unchecked
        {
            int h = (int)2166136261;
            foreach (char c in s) h = (h ^ c) * 16777619;
            return h;
        }
    }
}

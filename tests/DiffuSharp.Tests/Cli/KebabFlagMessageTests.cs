// Options are shown in kebab-case (--class-dropout-prob); the underscore spelling only parses. No message, help text or
// error the commands write may name an option the underscore way: the source's string literals are scanned for it, and
// errors built from option names at run time are checked by running the commands that give them.
using System.Text.RegularExpressions;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed partial class KebabFlagMessageTests
{
    [GeneratedRegex(@"--[a-z0-9]+_[a-z0-9_]+")]
    private static partial Regex UnderscoreFlag();

    /// <summary>The one place that names the underscore spelling on purpose: the help's note that it parses.</summary>
    static bool Allowed(string file, string line) =>
        Path.GetFileName(file) == "Options.cs" && line.Contains("Options parse with underscores too", StringComparison.Ordinal);

    /// <summary>The string literals' text of one line of C# (comments dropped); approximate for odd escapes, which
    /// only makes it see more, never less.</summary>
    internal static IEnumerable<string> StringLiterals(string line)
    {
        string code = line.TrimStart();
        if (code.StartsWith("//", StringComparison.Ordinal)) yield break;
        int i = 0;
        while (i < code.Length)
        {
            if (code[i] == '/' && i + 1 < code.Length && code[i + 1] == '/') yield break;           // a trailing comment
            if (code[i] == '\'' && i + 2 < code.Length) { i = code.IndexOf('\'', i + (code[i + 1] == '\\' ? 3 : 2)) + 1; if (i == 0) yield break; continue; }
            if (code[i] != '"') { i++; continue; }
            int start = ++i;
            while (i < code.Length && code[i] != '"') i += code[i] == '\\' ? 2 : 1;
            yield return code[start..Math.Min(i, code.Length)];
            i++;
        }
    }

    [Fact]
    public void The_literal_scanner_finds_flags_in_strings_and_not_in_comments()
    {
        Assert.Equal(["a --b_c d", "x"], StringLiterals("throw new CliException($\"a --b_c d\" + \"x\"); // --e_f").ToArray());
        Assert.Empty(StringLiterals("    /// <summary>--e_f</summary>"));
        Assert.Equal(["--g_h"], StringLiterals("var c = '\"'; Run(\"--g_h\");").ToArray());
    }

    [Fact]
    public void No_string_in_the_sources_names_an_underscore_flag()
    {
        var src = Path.Combine(TestPaths.RepoRoot, "src");
        var found = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(src, file);
            if (rel.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj")) continue;
            var lines = File.ReadAllLines(file);
            for (int n = 0; n < lines.Length; n++)
                foreach (var literal in StringLiterals(lines[n]))
                    foreach (Match m in UnderscoreFlag().Matches(literal))
                        if (!Allowed(file, lines[n])) found.Add($"{rel}:{n + 1}: {m.Value}");
        }
        Assert.True(found.Count == 0, "underscore flags in messages (write them kebab-case):\n" + string.Join("\n", found));
    }

    public static TheoryData<string[], string> FailingInvocations()
    {
        string fm = Path.Combine(TestPaths.RepoRoot, "models", "fashion-mnist");
        string run = Path.Combine(Path.GetTempPath(), "diffusharp-kebab-" + Guid.NewGuid().ToString("N"));
        return new()
        {
            { ["sample", "--model", fm, "--guidance", "3", "--n", "1"], "--class-dropout-prob" },
            { ["eval", "--model", fm, "--guidance", "3"], "--class-dropout-prob" },
            { ["train", "--init_from", fm, "--num_channels", "64", "--out", run], "--num-channels cannot change the network of --init-from" },
            { ["train", "--resume", "--out", run, "--channel_mult", "1,2"], "--channel-mult cannot change a model on --resume" },
            { ["train", "--preset", "tiny", "--class_dropout_prob", "0.1", "--out", run], "--class-dropout-prob needs a class-conditional model" },
            { ["train", "--preset", "tiny", "--batch_size", "0", "--out", run], "--batch-size" },
            { ["sample", "--model", fm, "--save_npy", "x.txt"], "--save-npy" },
        };
    }

    [Theory, MemberData(nameof(FailingInvocations))]
    public void Errors_name_options_in_kebab_case(string[] args, string expected)
    {
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli(args);
        Assert.NotEqual(0, code);
        Assert.Contains(expected, stderr);
        Assert.False(UnderscoreFlag().IsMatch(stderr), $"the error names an underscore flag: {stderr.Trim()}");
    }
}

// scripts/diffusharp-completion.bash completes commands and each command's options from the program's own help,
// so what it offers is the one (kebab-case) style the help shows.
using System.Diagnostics;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class CompletionScriptTests
{
    static string Complete(params string[] words)
    {
        string script = Path.Combine(TestPaths.RepoRoot, "scripts", "diffusharp-completion.bash");
        string quoted = string.Join(" ", words.Select(w => $"'{w}'"));
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={words.Length - 1}; _diffusharp; echo \"${{COMPREPLY[*]}}\"");
        psi.Environment["DIFFUSHARP_CMD"] = $"dotnet {Path.Combine(AppContext.BaseDirectory, "DiffuSharp.Cli.dll")}";
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000) && p.ExitCode == 0, err);
        return string.Join(" ", output.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Completes_commands_and_kebab_case_options()
    {
        if (OperatingSystem.IsWindows()) return;
        Assert.Equal("sample", Complete("diffusharp", "sa"));
        Assert.Equal("train train-classifier train-controlnet train-latent train-vae txt2img", Complete("diffusharp", "t"));
        Assert.Equal("--sampler --save-npy", Complete("diffusharp", "sample", "--sa"));
        Assert.Equal("--batch-size", Complete("diffusharp", "train", "--batch"));
        Assert.Equal("--num-channels --num-classes --num-heads --num-heads-upsample --num-res-blocks", Complete("diffusharp", "train", "--num"));
    }
}

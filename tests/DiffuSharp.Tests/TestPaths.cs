// Locates the repository and the fixture folders from the test binaries: walk up from AppContext.BaseDirectory to the
// folder holding DiffuSharp.sln (or .slnx). Every reference file a test reads is in tests/DiffuSharp.Tests/Fixtures
// (copied next to the test assembly), so a clone alone passes its tests; Fixtures/README.md says where each came from.
namespace DiffuSharp.Tests;

internal static class TestPaths
{
    static readonly Lazy<string> _repoRoot = new(FindRepoRoot);

    /// <summary>The folder holding DiffuSharp.sln / DiffuSharp.slnx.</summary>
    public static string RepoRoot => _repoRoot.Value;
    /// <summary>improved-diffusion's reference numbers (UNet, GaussianDiffusion): Fixtures/parity.</summary>
    public static string Parity => Path.Combine(Fixtures, "parity");
    /// <summary>diffusers / transformers reference outputs (components, tokenizer, schedulers): Fixtures/diffusers.</summary>
    public static string Diffusers => Path.Combine(Fixtures, "diffusers");
    /// <summary>tests/DiffuSharp.Tests/Fixtures as copied next to the test assembly.</summary>
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "Fixtures");

    static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DiffuSharp.sln")) || File.Exists(Path.Combine(dir.FullName, "DiffuSharp.slnx")))
                return dir.FullName;
        throw new DirectoryNotFoundException(
            $"No folder holding DiffuSharp.sln or DiffuSharp.slnx above the test binaries ({AppContext.BaseDirectory}).");
    }
}

// Locates the repository and the shared fixture folder from the test binaries: walk up from AppContext.BaseDirectory
// to the folder holding DiffuSharp.sln (or .slnx); the shared folder is its sibling, ../shared.
namespace DiffuSharp.Tests;

internal static class TestPaths
{
    static readonly Lazy<string> _repoRoot = new(FindRepoRoot);
    static readonly Lazy<string> _shared = new(FindShared);

    /// <summary>The folder holding DiffuSharp.sln / DiffuSharp.slnx.</summary>
    public static string RepoRoot => _repoRoot.Value;
    /// <summary>RepoRoot/../shared, absolute; throws if it does not exist.</summary>
    public static string Shared => _shared.Value;
    public static string Parity => Path.Combine(Shared, "parity");
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

    static string FindShared()
    {
        string shared = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
        if (!Directory.Exists(Path.Combine(shared, "parity")))
            throw new DirectoryNotFoundException(
                $"Shared fixture folder not found: looked for {Path.Combine(shared, "parity")} (the sibling 'shared' of the repository root {RepoRoot}).");
        return shared;
    }
}

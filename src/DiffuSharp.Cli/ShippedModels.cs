// The model folders that ship in the repository's models/ (the Fashion-MNIST classifier that eval uses, the
// class-conditional Fashion-MNIST UNet that sample uses by default), found from the program's own location: its
// binaries live below the repository, whether built by ./diffusharp or by dotnet test.
namespace DiffuSharp.Cli;

public static class ShippedModels
{
    /// <summary>models/NAME of the repository this program was built in, if it holds FILE; else null.</summary>
    public static string? Find(string name, string file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "models", name);
            if (File.Exists(Path.Combine(candidate, file))) return candidate;
        }
        return null;
    }
}

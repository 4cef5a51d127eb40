// The model folders that ship in the repository's models/ (the Fashion-MNIST classifier that eval uses, the
// class-conditional Fashion-MNIST UNet that sample and eval use by default, and its fine-tune with a null label that
// they use for --guidance, and the latent text-to-image pipeline that txt2img, img2img and inpaint use by default), found from the program's own location: its binaries live below the repository, whether
// built by ./diffusharp or by dotnet test.
namespace DiffuSharp.Cli;

public static class ShippedModels
{
    /// <summary>The model sample and eval draw from when no --model is given (models/fashion-mnist).</summary>
    public const string Default = "fashion-mnist";

    /// <summary>The default model fine-tuned with a null label (models/fashion-mnist-cfg): sample's and eval's model
    /// for --guidance without --model, since the default one has no null label to guide with.</summary>
    public const string Guided = "fashion-mnist-cfg";

    /// <summary>The latent text-to-image pipeline with its ControlNets (models/fashion-mnist-ldm): txt2img's, img2img's
    /// and inpaint's model when no --model is given.</summary>
    public const string TextToImage = "fashion-mnist-ldm";

    /// <summary>--model, else the shipped model for the options given: <see cref="Guided"/> with --guidance, else
    /// <see cref="Default"/>.</summary>
    public static string FolderFor(string command, ParsedOptions o)
        => FlagOrShipped(command, o, "model", o.Has("guidance") ? Guided : Default, "model.safetensors");

    /// <summary>--FLAG's folder, else the shipped models/NAME holding FILE; neither is a CliException that says to pass
    /// --FLAG <paramref name="value"/>.</summary>
    public static string FlagOrShipped(string command, ParsedOptions o, string flag, string name, string file, string value = "DIR")
        => o.String(flag) ?? Find(name, file)
            ?? throw new CliException($"{command}: no --{flag} given, and this repository has no models/{name}; pass --{flag} {value}");

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

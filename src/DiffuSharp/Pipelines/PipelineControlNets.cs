// The ControlNets that go with a pipeline folder: those its model_index.json names (controlnet, controlnet_1, … of a
// StableDiffusionControlNetPipeline), then every subfolder `controlnet-NAME/` (or a `controlnet/` the index does not
// name) whose config.json is a ControlNetModel's. diffusers' StableDiffusionPipeline index has no controlnet entry, so a
// folder that ships ControlNets for its UNet keeps them beside the components (`controlnet-edges/`,
// `controlnet-silhouette/`), each loaded in diffusers with ControlNetModel.from_pretrained(folder / "controlnet-edges").
// Each net has a short name: the index's component name ("controlnet", "controlnet_1"), or the subfolder's name
// without "controlnet-" ("edges"). Names are what the command line and the server take; a name is looked up in this
// list, never joined to a path.
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Pipelines;

/// <summary>One ControlNet of a pipeline folder.</summary>
/// <param name="Name">"edges" for controlnet-edges/, the component name ("controlnet", "controlnet_1") for the index's</param>
/// <param name="Folder">its folder (config.json and diffusion_pytorch_model.safetensors)</param>
/// <param name="InIndex">named in model_index.json</param>
public sealed record NamedControlNet(string Name, string Folder, bool InIndex);

/// <summary>Lists and finds the ControlNets of a pipeline folder: model_index.json's, then its controlnet-NAME/
/// subfolders.</summary>
public static class PipelineControlNets
{
    /// <summary>The prefix of a ControlNet subfolder beside the pipeline's components: controlnet-NAME/.</summary>
    public const string FolderPrefix = "controlnet-";

    /// <summary>The ControlNets of the pipeline folder <paramref name="folder"/>: model_index.json's (when the folder
    /// has one) in its order, then the ControlNet subfolders in ordinal name order.</summary>
    public static IReadOnlyList<NamedControlNet> List(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"pipeline folder not found: {folder}");
        var index = File.Exists(Path.Combine(folder, "model_index.json")) ? ModelIndex.Load(folder) : null;
        return List(folder, index);
    }

    /// <summary>The ControlNets of <paramref name="index"/>'s folder: the index's, then the ControlNet subfolders.</summary>
    public static IReadOnlyList<NamedControlNet> List(ModelIndex index) => List(index.Root, index);

    static List<NamedControlNet> List(string folder, ModelIndex? index)
    {
        var nets = new List<NamedControlNet>();
        var folders = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in index?.ControlNets ?? [])
        {
            nets.Add(new NamedControlNet(c.Name, c.Folder, InIndex: true));
            folders.Add(Path.GetFileName(c.Folder));
        }
        foreach (var dir in Directory.EnumerateDirectories(folder).Order(StringComparer.Ordinal))
        {
            string sub = Path.GetFileName(dir);
            if (folders.Contains(sub)) continue;
            string? name = sub == "controlnet" ? sub
                : sub.StartsWith(FolderPrefix, StringComparison.Ordinal) && sub.Length > FolderPrefix.Length ? sub[FolderPrefix.Length..] : null;
            if (name is null || nets.Any(n => n.Name == name) || !IsControlNet(dir)) continue;
            nets.Add(new NamedControlNet(name, dir, InIndex: false));
        }
        return nets;
    }

    /// <summary>Whether <paramref name="dir"/> holds a config.json whose "_class_name" is ControlNetModel. A folder
    /// without config.json is not one; a config.json that is not valid JSON is an error naming it.</summary>
    public static bool IsControlNet(string dir)
    {
        if (!File.Exists(Path.Combine(dir, "config.json"))) return false;
        return ComponentLoader.ClassName(dir) == "ControlNetModel";
    }

    /// <summary>The net called <paramref name="name"/> (or, as well, by its folder's name: "controlnet-edges"); null
    /// when there is none.</summary>
    public static NamedControlNet? Find(IReadOnlyList<NamedControlNet> nets, string name)
        => nets.FirstOrDefault(n => n.Name == name) ?? nets.FirstOrDefault(n => Path.GetFileName(n.Folder) == name);

    /// <summary>"edges, silhouette", or "none" for an empty list: for messages naming what is available.</summary>
    public static string Names(IReadOnlyList<NamedControlNet> nets) => nets.Count == 0 ? "none" : string.Join(", ", nets.Select(n => n.Name));
}

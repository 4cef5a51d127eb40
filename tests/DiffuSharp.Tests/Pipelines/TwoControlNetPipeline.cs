// A StableDiffusionPipeline folder with two ControlNets beside its components, as models/fashion-mnist-ldm ships its
// edge and silhouette nets: a copy of Fixtures' tiny_sd (model_index.json names no ControlNet) plus controlnet-a/ and
// controlnet-b/, copies of tiny_sd_multicontrolnet's controlnet/ and controlnet_1/ (made for the same UNet, with
// different weights). Built at test time from the committed fixtures.
namespace DiffuSharp.Tests.Pipelines;

internal static class TwoControlNetPipeline
{
    static readonly string Pipelines = Path.Combine(TestPaths.Diffusers, "pipelines");

    /// <summary>The folder of net a: tiny_sd_multicontrolnet/controlnet (what controlnet-a/ is a copy of).</summary>
    public static readonly string NetA = Path.Combine(Pipelines, "tiny_sd_multicontrolnet", "controlnet");
    /// <summary>The folder of net b: tiny_sd_multicontrolnet/controlnet_1.</summary>
    public static readonly string NetB = Path.Combine(Pipelines, "tiny_sd_multicontrolnet", "controlnet_1");

    /// <summary>Writes the pipeline folder <paramref name="parent"/>/<paramref name="name"/> and returns it.</summary>
    public static string Make(string parent, string name = "two_nets")
    {
        string folder = Path.Combine(parent, name);
        Copy(Path.Combine(Pipelines, "tiny_sd"), folder);
        Copy(NetA, Path.Combine(folder, "controlnet-a"));
        Copy(NetB, Path.Combine(folder, "controlnet-b"));
        return folder;
    }

    static void Copy(string from, string to)
    {
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
    }
}

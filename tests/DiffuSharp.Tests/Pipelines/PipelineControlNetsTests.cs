// PipelineControlNets: the ControlNets of a pipeline folder are model_index.json's, then its controlnet-NAME/ subfolders
// holding a ControlNetModel config.json, each by name; other folders are not nets, and a broken config is an error.
using DiffuSharp.Pipelines;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Pipelines;

public class PipelineControlNetsTests
{
    static readonly string Pipelines = Path.Combine(TestPaths.Diffusers, "pipelines");

    [Fact]
    public void Subfolders_beside_a_plain_pipeline_are_listed_by_name()
    {
        using var dir = new TempDir();
        string folder = TwoControlNetPipeline.Make(dir.Path);
        Directory.CreateDirectory(Path.Combine(folder, "controlnet-notes"));                                  // no config.json
        Directory.CreateDirectory(Path.Combine(folder, "controlnet-unet"));                                   // another class
        File.Copy(Path.Combine(folder, "unet", "config.json"), Path.Combine(folder, "controlnet-unet", "config.json"));
        Directory.CreateDirectory(Path.Combine(folder, "edges"));                                             // not controlnet-*
        File.Copy(Path.Combine(folder, "controlnet-a", "config.json"), Path.Combine(folder, "edges", "config.json"));

        var nets = PipelineControlNets.List(folder);
        Assert.Equal(["a", "b"], nets.Select(n => n.Name));
        Assert.Equal([Path.Combine(folder, "controlnet-a"), Path.Combine(folder, "controlnet-b")], nets.Select(n => n.Folder));
        Assert.All(nets, n => Assert.False(n.InIndex));
        Assert.Same(nets[1], PipelineControlNets.Find(nets, "b"));
        Assert.Same(nets[1], PipelineControlNets.Find(nets, "controlnet-b"));                                  // the folder's name too
        Assert.Null(PipelineControlNets.Find(nets, "c"));
        Assert.Equal("a, b", PipelineControlNets.Names(nets));
        Assert.Equal("none", PipelineControlNets.Names(PipelineControlNets.List(Path.Combine(Pipelines, "tiny_sd"))));
    }

    [Fact]
    public void The_index_nets_come_first_and_are_not_listed_twice()
    {
        using var dir = new TempDir();
        string folder = Path.Combine(dir.Path, "multi");
        foreach (var f in Directory.GetFiles(Path.Combine(Pipelines, "tiny_sd_multicontrolnet"), "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(folder, Path.GetRelativePath(Path.Combine(Pipelines, "tiny_sd_multicontrolnet"), f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        Directory.CreateDirectory(Path.Combine(folder, "controlnet-depth"));
        File.Copy(Path.Combine(folder, "controlnet", "config.json"), Path.Combine(folder, "controlnet-depth", "config.json"));

        var nets = PipelineControlNets.List(ModelIndex.Load(folder));
        Assert.Equal(["controlnet", "controlnet_1", "depth"], nets.Select(n => n.Name));
        Assert.Equal([true, true, false], nets.Select(n => n.InIndex));
    }

    [Fact]
    public void A_broken_config_is_an_error_naming_it()
    {
        using var dir = new TempDir();
        string folder = TwoControlNetPipeline.Make(dir.Path);
        string config = Path.Combine(folder, "controlnet-b", "config.json");
        File.WriteAllText(config, "{ not json");
        var e = Assert.Throws<InvalidDataException>(() => PipelineControlNets.List(folder));
        Assert.Contains(config, e.Message);
    }
}

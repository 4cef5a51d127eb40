// ControlMetrics on synthetic masks with hand-counted values; eval-controlnet end to end on a tiny random pipeline
// (every run scored, within [0, 1]) and its bad input as one error line.
using DiffuSharp.Evaluation;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Tests.Cli;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Evaluation;

public sealed class ControlMetricsTests
{
    static bool[] Square(int size, int x0, int y0, int side, bool outline)
    {
        var m = new bool[size * size];
        for (int y = y0; y < y0 + side; y++)
            for (int x = x0; x < x0 + side; x++)
                m[y * size + x] = !outline || y == y0 || y == y0 + side - 1 || x == x0 || x == x0 + side - 1;
        return m;
    }

    [Fact]
    public void Edge_f1_is_pixel_exact()
    {
        var a = Square(16, 2, 2, 6, outline: true);                      // 20 pixels
        Assert.Equal(1.0, ControlMetrics.EdgeF1(a, a));
        var shifted = Square(16, 3, 2, 6, outline: true);                // one column right: the top and bottom rows share x = 3..7,
        Assert.Equal(10, a.Zip(shifted).Count(p => p.First && p.Second));  // the sides (x = 2, 7 against 3, 8) nothing: P = R = ½
        Assert.Equal(2 * 0.5 * 0.5 / (0.5 + 0.5), ControlMetrics.EdgeF1(shifted, a), 12);
        var left = a.Select((v, k) => v && k % 16 < 5).ToArray();        // x = 2..4 of the outline: 10 pixels, precision 1, recall ½
        Assert.Equal(2 * 0.5 / 1.5, ControlMetrics.EdgeF1(left, a), 12);
        Assert.Equal(0.0, ControlMetrics.EdgeF1(new bool[256], a));
        Assert.Equal(1.0, ControlMetrics.EdgeF1(new bool[256], new bool[256]));
    }

    [Fact]
    public void Iou_counts_intersection_over_union()
    {
        var a = Square(16, 0, 0, 4, outline: false);                     // 16 pixels
        var b = Square(16, 2, 0, 4, outline: false);                     // 16, 8 shared
        Assert.Equal(8.0 / 24, ControlMetrics.Iou(a, b), 12);
        Assert.Equal(1.0, ControlMetrics.Iou(a, a));
        Assert.Equal(0.0, ControlMetrics.Iou(a, Square(16, 8, 8, 4, outline: false)));
        Assert.Throws<ArgumentException>(() => ControlMetrics.Iou(a, new bool[10]));
    }

    [Fact]
    public void Eval_controlnet_scores_every_run()
    {
        using var dir = new TempDir();
        string pipe = TrainControlNetCommandTests.Pipeline(dir.Path);
        var unet = StableDiffusionPipeline.Load(ModelIndex.Load(pipe)).UNet;
        var rng = new Rng(5);
        foreach (var name in new[] { "e", "s" })
        {
            var net = ControlNetModel.FromUNet(unet, 3, [16, 32], rng);
            foreach (var (_, p) in net.NamedParameters()) { var d = p.Data; for (int i = 0; i < d.Length; i++) d[i] += 0.05f * (float)(rng.NextDouble() - 0.5); }
            ControlNetFolder.Save(Path.Combine(dir.Path, name), net.Config, net.NamedParameters().Select(p => (p.Name, p.Param.Shape.ToArray(), p.Param.ToArray())));
        }
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["eval-controlnet", "--pipeline", pipe, "--edges", Path.Combine(dir.Path, "e"),
            "--silhouette", Path.Combine(dir.Path, "s"), "--n", "2", "--steps", "2", "--json"]);
        Assert.True(code == 0, stderr);
        var lines = stdout.Trim().Split('\n').Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).ToList();
        Assert.Equal(["none", "edges", "silhouette", "all"], lines.Select(l => (string)l["run"]!));
        foreach (var l in lines)
        {
            Assert.Equal(2, (int)l["n"]!);
            Assert.InRange((double)l["edge_f1"]!, 0, 1);
            Assert.InRange((double)l["silhouette_iou"]!, 0, 1);
        }
        TrainSampleEndToEndTests.AssertOneLineError(["eval-controlnet", "--pipeline", pipe], "give --edges DIR, --silhouette DIR or both");
        TrainSampleEndToEndTests.AssertOneLineError(["eval-controlnet", "--pipeline", pipe, "--edges", Path.Combine(dir.Path, "none")], "ControlNet folder not found");
    }
}

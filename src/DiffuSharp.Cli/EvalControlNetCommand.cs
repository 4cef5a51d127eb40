// diffusharp eval-controlnet: how closely a pipeline's outputs follow the control images of its ControlNets, on the
// first --n Fashion-MNIST test images ("a photo of a {class}", one seed per image): without control, with each
// ControlNet alone and, given both, with both at once. Edges: pixel-exact F1 of the outputs' Canny edges against the
// control edges; silhouette: IoU of the outputs' filled masks against the control mask (Evaluation/ControlNetEvaluation.cs).
using System.Globalization;
using System.Text.Json.Nodes;
using DiffuSharp.Data;
using DiffuSharp.Evaluation;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class EvalControlNetCommand
{
    const string Name = "eval-controlnet";

    static readonly OptionSpec[] Options =
    [
        new("pipeline", "the text-to-image pipeline folder (e.g. train-controlnet's <out>/pipeline); default: the shipped models/fashion-mnist-ldm", Value: "DIR"),
        new("edges", "the edges ControlNet folder (train-controlnet --condition edges: <out>/controlnet); with neither this nor --silhouette: the pipeline's controlnet-edges/ and controlnet-silhouette/", Value: "DIR"),
        new("silhouette", "the silhouette ControlNet folder", Value: "DIR"),
        new("data", "Fashion-MNIST folder (IDX .gz files); the test images are used", FashionMnist.DefaultFolder, Value: "DIR"),
        new("n", "test images to score", "200", Value: "N"),
        new("steps", "sampling steps (the pipeline's scheduler)", "25", Value: "N"),
        new("guidance", "classifier-free guidance scale", "3", Value: "W"),
        new("control_scale", "conditioning scale of every ControlNet", "1", Value: "S"),
        new("seed", "seed of image i is seed + i", "0", Value: "S"),
        new("json", "one JSON line per run instead of a table", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Edge F1 and silhouette IoU of a pipeline's outputs against their control images, with and without its ControlNets.", Options)); return 0; }
        string pipeline = ShippedModels.FlagOrShipped(Name, o, "pipeline", ShippedModels.TextToImage, "model_index.json");
        var folders = new List<(ControlCondition, string)>();
        if (o.String("edges") is { } e) folders.Add((ControlCondition.Edges, e));
        if (o.String("silhouette") is { } s) folders.Add((ControlCondition.Silhouette, s));
        if (folders.Count == 0 && Directory.Exists(pipeline))
        {
            // neither given: the pipeline folder's own controlnet-edges/ and controlnet-silhouette/, as shipped
            var own = PipelineControlNets.List(pipeline);
            if (PipelineControlNets.Find(own, "edges") is { } ownEdges) folders.Add((ControlCondition.Edges, ownEdges.Folder));
            if (PipelineControlNets.Find(own, "silhouette") is { } ownSilhouette) folders.Add((ControlCondition.Silhouette, ownSilhouette.Folder));
        }
        if (folders.Count == 0) throw new CliException($"{Name}: give --edges DIR, --silhouette DIR or both ({pipeline} has no controlnet-edges/ or controlnet-silhouette/)");
        int n = o.Int("n", 1);
        var settings = new ControlNetEvalSettings(o.Int("steps", 1, 1000), o.Double("guidance", 0), o.Double("control_scale", 0), (ulong)o.Long("seed"));
        foreach (var (_, dir) in folders)
            if (!Directory.Exists(dir)) throw new CliException($"{Name}: ControlNet folder not found: {dir}");
        if (!Directory.Exists(pipeline)) throw new CliException($"{Name}: --pipeline folder not found: {pipeline}");
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(pipeline));
        var nets = folders.Select(f => (f.Item1, ComponentLoader.LoadControlNet(f.Item2))).ToList();
        var test = FashionMnist.Load(o.Required("data"), train: false);
        n = Math.Min(n, test.Count);
        var images = new ImageDataset(test.Images.AsSpan(0, n * test.ImageLength).ToArray(), n, 1, test.Height, test.Width, test.Labels!.AsSpan(0, n).ToArray(), test.NumClasses);
        IReadOnlyList<ControlRunScore> scores;
        try { scores = ControlNetEvaluation.Evaluate(pipe, nets, images, settings); }
        catch (ArgumentException ex) { throw new CliException($"{Name}: {ex.Message}"); }
        var none = scores[0];
        foreach (var r in scores)
        {
            if (o.Flag("json"))
            {
                var line = new JsonObject { ["run"] = r.Run, ["n"] = r.Count, ["steps"] = settings.Steps, ["guidance"] = settings.Guidance };
                if (r.EdgeF1 is double f) { line["edge_f1"] = f; line["edge_f1_over_none"] = none.EdgeF1 > 0 ? f / none.EdgeF1 : null; }
                if (r.SilhouetteIou is double i) { line["silhouette_iou"] = i; line["silhouette_iou_over_none"] = none.SilhouetteIou > 0 ? i / none.SilhouetteIou : null; }
                stdout.WriteLine(line.ToJsonString());
            }
            else
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{r.Run,-12} n {r.Count}{(r.EdgeF1 is double f2 ? $"  edge F1 {f2:F3} ({f2 / none.EdgeF1:F2}× none)" : "")}{(r.SilhouetteIou is double i2 ? $"  silhouette IoU {i2:F3} ({i2 / none.SilhouetteIou:F2}× none)" : "")}"));
        }
        return 0;
    }
}

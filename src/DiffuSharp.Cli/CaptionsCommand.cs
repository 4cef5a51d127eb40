// diffusharp captions: the caption of every Fashion-MNIST image (one line each, in dataset order; an empty line is
// an empty caption), as train-latent draws them with --bare-captions P, or with --fit the class terciles of the
// attributes that decide the words.
using System.Globalization;
using System.Text;
using DiffuSharp.Data;
using DiffuSharp.IO;

namespace DiffuSharp.Cli;

public static class CaptionsCommand
{
    const string Name = "captions";

    static readonly OptionSpec[] Options =
    [
        new("data", "Fashion-MNIST folder (IDX .gz files)", FashionMnist.DefaultFolder, Value: "DIR"),
        new("split", "train or test", "train", Value: "SPLIT"),
        new("seed", "caption seed", "0", Value: "S"),
        new("epoch", "epoch (each epoch draws new captions for the same images)", "0", Value: "E"),
        new("bare_captions", "share of non-empty captions that name the garment only (train-latent draws with 0.5; docs/captions.md)", "0", Value: "P"),
        new("out", "text file: one caption per line, line i for image i", Value: "FILE"),
        new("fit", "print each class's terciles of brightness, size and texture on this split (a Markdown table)", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Captions of Fashion-MNIST images from their labels and measured attributes (docs/captions.md).", Options)); return 0; }
        string split = o.Required("split");
        if (split is not ("train" or "test")) throw new CliException($"{Name}: --split must be train or test, got '{split}'");
        string? outPath = o.String("out");
        if (outPath is null && !o.Flag("fit")) throw new CliException($"{Name}: give --out FILE for the captions, or --fit for the thresholds");
        if (outPath is not null) CliModel.CheckOutput(Name, outPath);
        ulong seed = (ulong)o.Long("seed");
        int epoch = o.Int("epoch", 0);
        var drawing = new CaptionOptions(BareProbability: o.Double("bare_captions", 0));
        try { drawing.Validate(); } catch (ArgumentException e) { throw new CliException($"{Name}: --bare-captions: {e.Message}"); }
        var data = FashionMnist.Load(o.Required("data"), split == "train");
        var attributes = FashionCaptions.Measure(data);
        if (o.Flag("fit"))
        {
            var t = FashionCaptions.Fit(attributes, data.Labels!);
            stdout.WriteLine("| class | dark below | light from | small below | large from | plain below | patterned from |");
            stdout.WriteLine("| --- | --- | --- | --- | --- | --- | --- |");
            for (int c = 0; c < t.Length; c++)
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {FashionCaptions.ClassNames[c]} | {t[c].DarkBelow:R} | {t[c].LightFrom:R} | {t[c].SmallBelow:R} | {t[c].LargeFrom:R} | {t[c].PlainBelow:R} | {t[c].PatternedFrom:R} |"));
        }
        if (outPath is not null)
        {
            var captions = FashionCaptions.ForDataset(attributes, data.Labels!, seed, epoch, drawing);
            var sb = new StringBuilder();
            foreach (var c in captions) sb.Append(c).Append('\n');
            var bytes = new UTF8Encoding(false).GetBytes(sb.ToString());
            AtomicFile.Write(outPath, s => s.Write(bytes));
            int empty = captions.Count(c => c.Length == 0);
            stdout.WriteLine($"{captions.Length} captions ({empty} empty) for the {split} split, seed {seed}, epoch {epoch}; wrote {outPath}");
        }
        return 0;
    }
}

// diffusharp edges IMAGE --out FILE: a control image from any picture. Canny edges (white on black) by default,
// or the filled silhouette (--silhouette); the same functions make the ControlNet conditions of training.
using System.Globalization;
using DiffuSharp.Imaging;

namespace DiffuSharp.Cli;

public static class EdgesCommand
{
    const string Name = "edges";

    static readonly OptionSpec[] Options =
    [
        new("out", "PNG to write: 255 on edges (or inside the silhouette), 0 elsewhere", Value: "FILE"),
        new("sigma", "Gaussian blur before the gradients, in pixels", "1", Value: "S"),
        new("low", "hysteresis low threshold on the Sobel magnitude of the [0, 1] image", "0.2", Value: "L"),
        new("high", "hysteresis high threshold (a σ = 1 blurred step of height h peaks near 1.6·h)", "0.4", Value: "H"),
        new("silhouette", "write the filled object mask instead of edges", IsFlag: true),
        new("threshold", "silhouette: object pixels are brighter than this (gray in [0, 1])", "0.05", Value: "T"),
        new("invert", "silhouette: the object is darker than the background", IsFlag: true),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        string? imagePath = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : null;
        var o = OptionParser.Parse(Name, imagePath is null ? args : args[1..], Options);
        if (o.Flag("help"))
        {
            stdout.WriteLine($"usage: diffusharp {Name} IMAGE --out FILE [options]{Environment.NewLine}" +
                OptionParser.Help(Name, "Canny edges (or the filled silhouette) of a PNG image, as a PNG.", Options));
            return 0;
        }
        if (imagePath is null) throw new CliException($"{Name}: give the input PNG first: diffusharp {Name} IMAGE --out FILE");
        string outPath = o.Required("out");
        if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new CliException($"{Name}: --out must be a .png file, got {outPath}");
        CliModel.CheckOutput(Name, outPath);
        if (Directory.Exists(imagePath)) throw new CliException($"{Name}: {imagePath} is a folder, not a PNG image");
        if (!File.Exists(imagePath)) throw new FileNotFoundException($"image not found: {imagePath}", imagePath);
        var image = Png.Read(imagePath);
        var gray = Canny.ToUnit(image);
        bool[] mask;
        string what;
        if (o.Flag("silhouette"))
        {
            double t = o.Double("threshold", 0, 1);
            mask = Silhouette.Mask(gray, image.Width, image.Height, t, o.Flag("invert"));
            what = string.Create(CultureInfo.InvariantCulture, $"silhouette covers {100 * Silhouette.Area(mask):F1}% of the image");
        }
        else
        {
            double low = o.Double("low", 0), high = o.Double("high", 0), sigma = o.Double("sigma", 0, 100);
            if (high < low) throw new CliException($"{Name}: --high ({o.String("high")}) must be at least --low ({o.String("low")})");
            mask = Canny.Detect(gray, image.Width, image.Height, new CannyOptions(sigma, low, high));
            what = $"{mask.Count(b => b)} edge pixels";
        }
        var px = new byte[mask.Length];
        for (int k = 0; k < px.Length; k++) px[k] = mask[k] ? (byte)255 : (byte)0;
        Png.Write(outPath, new Image8(image.Width, image.Height, 1, px));
        stdout.WriteLine($"{image.Width}×{image.Height}: {what}; wrote {outPath}");
        return 0;
    }
}

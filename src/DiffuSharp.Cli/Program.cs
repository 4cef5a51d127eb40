// diffusharp: the command line. Parses arguments into config records and calls the library; every user error
// becomes one line on stderr and a non-zero exit code, never a stack trace (set DIFFUSHARP_DEBUG=1 for one).
using System.Text;
using DiffuSharp.Data;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class Program
{
    static readonly (string Name, string Summary)[] Commands =
    [
        ("train", "train a UNet diffusion model (improved-diffusion flags)"),
        ("sample", "sample images from a model folder (DDPM or DDIM)"),
        ("txt2img", "Stable Diffusion text-to-image from a diffusers pipeline folder"),
        ("img2img", "Stable Diffusion image-to-image"),
        ("inpaint", "Stable Diffusion inpainting (4- and 9-channel UNets)"),
        ("interpolate", "interpolate two images or seeds at step t"),
        ("invert", "DDIM-invert an image to noise and reconstruct it"),
        ("eval", "NLL in bits/dim and sample quality of a model"),
        ("train-classifier", "train the Fashion-MNIST classifier that eval uses"),
        ("bench", "benchmarks: 'bench ops' and 'bench train --preset NAME'"),
        ("verify-diffusers", "replay diffusers reference recordings and compare every tensor"),
        ("serve", "the web page and HTTP API (sd-webui compatible subset) at http://127.0.0.1:7860"),
        ("edges", "Canny edges or the filled silhouette of an image (a control image)"),
        ("captions", "captions of Fashion-MNIST images from labels and measured attributes"),
        ("train-vae", "train an AutoencoderKL on Fashion-MNIST; writes a diffusers vae/ folder"),
        ("train-latent", "train a text-to-image UNet and text encoder in a VAE's latent space; writes a diffusers pipeline"),
        ("convert", "copy a diffusers/transformers folder with its weights stored as float16 or bfloat16"),
        ("eval-t2i", "class accuracy, Fréchet distance and word-following of a Fashion-MNIST text-to-image pipeline"),
        ("train-controlnet", "train a ControlNet (edges or silhouette) for a text-to-image pipeline; writes a diffusers ControlNetModel"),
        ("eval-controlnet", "edge F1 and silhouette IoU of a pipeline's outputs against their control images, with and without ControlNets"),
        ("eval-vae", "PSNR and Fréchet distance of a VAE's reconstructions of test images"),
    ];

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs a command; progress (Progress/ProgressBar.cs) shows on the process's terminal when stdout is
    /// Console.Out (plain lines on stderr when redirected), and nowhere for other writers.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        => Run(args, stdout, stderr, ReferenceEquals(stdout, Console.Out) ? Progress.ProgressOutput.ForProcess() : Progress.ProgressOutput.None);

    /// <summary>Runs a command with its progress shown on <paramref name="progress"/>.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, Progress.ProgressOutput progress)
    {
        using var _ = Progress.ProgressOutput.Use(progress);
        try
        {
            args = ResponseFiles.Expand(args);
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                stdout.WriteLine(Usage());
                return 0;
            }
            var rest = args[1..];
            return args[0] switch
            {
                "bench" => BenchCommand.Run(rest, stdout),
                "train" => TrainCommand.Run(rest, stdout),
                "sample" => SampleCommand.Run(rest, stdout),
                "train-classifier" => TrainClassifierCommand.Run(rest, stdout),
                "txt2img" => Txt2ImgCommand.Run(rest, stdout, stderr),
                "img2img" => Img2ImgCommand.Run(rest, stdout, stderr),
                "inpaint" => InpaintCommand.Run(rest, stdout, stderr),
                "interpolate" => InterpolateCommand.Run(rest, stdout),
                "invert" => InvertCommand.Run(rest, stdout),
                "eval" => EvalCommand.Run(rest, stdout),
                "verify-diffusers" => VerifyDiffusersCommand.Run(rest, stdout, stderr),
                "serve" => ServeCommand.Run(rest, stdout, stderr),
                "edges" => EdgesCommand.Run(rest, stdout),
                "captions" => CaptionsCommand.Run(rest, stdout),
                "train-vae" => TrainVaeCommand.Run(rest, stdout),
                "train-latent" => TrainLatentCommand.Run(rest, stdout),
                "eval-t2i" => EvalT2iCommand.Run(rest, stdout),
                "convert" => ConvertCommand.Run(rest, stdout),
                "train-controlnet" => TrainControlNetCommand.Run(rest, stdout),
                "eval-controlnet" => EvalControlNetCommand.Run(rest, stdout),
                "eval-vae" => EvalVaeCommand.Run(rest, stdout),
                _ => throw new CliException($"unknown command '{args[0]}'; commands: {string.Join(", ", Commands.Select(c => c.Name))}"),
            };
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("DIFFUSHARP_DEBUG") != "1")
        {
            stderr.WriteLine($"error: {OneLine(e)}");
            return e is CliException ? 2 : 1;                     // a stopped diverging run (NonFiniteTrainingException) is 1
        }
    }

    internal static string OneLine(Exception e)
    {
        string msg = e switch
        {
            CliException or NonFiniteTrainingException or DatasetNotFoundException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException or IOException or UnauthorizedAccessException => e.Message,
            OutOfMemoryException => "out of memory: " + e.Message,
            _ => $"{e.GetType().Name}: {e.Message}",
        };
        return Printable(msg.ReplaceLineEndings(" "));
    }

    /// <summary>The message with control characters (bytes from a file: ESC sequences, BEL, NUL, …) and lone
    /// surrogates written as \uXXXX, so an error line never drives the terminal.</summary>
    internal static string Printable(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            bool pair = char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]);
            if (pair) { sb.Append(c).Append(s[++i]); continue; }
            if (char.IsControl(c) || char.IsSurrogate(c) || char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.Format or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator) sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        return sb.ToString();
    }

    static string Usage()
    {
        var lines = new List<string> { "usage: diffusharp <command> [options]", "", "commands:" };
        lines.AddRange(Commands.Select(c => $"  {c.Name,-17} {c.Summary}"));
        lines.Add("");
        lines.Add("'diffusharp <command> --help' lists a command's options.");
        return string.Join(Environment.NewLine, lines);
    }
}

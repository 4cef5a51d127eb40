// diffusharp invert: DDIM inversion (Song et al. 2021, §4.3 and App. D: the deterministic ODE run forward) of one
// image to its latent x_T over --steps respaced steps, then DDIM (eta 0) back from x_T. Prints the reconstruction
// error and writes a strip: original | x_T (shown as x_T / 2, so ±2σ spans black to white) | reconstruction.
using System.Globalization;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Diffusion;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Models;

namespace DiffuSharp.Cli;

public static class InvertCommand
{
    const string Name = "invert";

    static readonly OptionSpec[] Options =
    [
        new("model", "model folder (model.safetensors + model.json)", Value: "DIR"),
        new("image", "image: PNG, JPEG, BMP, GIF, WebP or TIFF (converted to the model's channels and size)", Value: "FILE"),
        new("steps", "DDIM steps, evenly spaced over the trained T", "50", Value: "S"),
        new("class", "class label 0..k−1 or name (shirt, \"ankle boot\"; class-conditional models)", Value: "LABEL"),
        new("out", "strip (.png or .jpg): original | x_T / 2 | reconstruction", "inversion.png", Value: "FILE"),
        new("save-latent", "also write x_T as .npy (float32 1×C×H×W; sample --noise reads it)", Value: "FILE"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "DDIM-inverts an image to x_T and reconstructs it.", Options)); return 0; }
        int steps = o.Int("steps");
        if (steps < 1) throw new CliException($"{Name}: --steps must be at least 1, got {steps}");
        string imagePath = o.Required("image"), outPath = o.Required("out");
        CliModel.CheckImageOutput(Name, outPath);
        string? latentPath = o.String("save-latent");
        if (latentPath is not null) CliModel.CheckOutput(Name, latentPath);

        var (config, unet) = ModelFolder.Load(o.Required("model"));
        int? label = CliModel.Label(Name, o, config, o.Required("model"));
        var diffusion = CliModel.Diffusion(Name, config, steps);
        var (pixels, resized) = CliModel.ReadImage(Name, imagePath, config);
        if (resized) stdout.WriteLine($"image scaled and centre-cropped to {config.ImageSize}×{config.ImageSize}");
        using var bar = ProgressBar.Start(Name, 2L * steps - 1);                    // model calls: inversion (steps − 1), then reconstruction (steps)
        var labelled = CliModel.WithLabel(unet, label);
        DiffusionModel model = (x, t) => { var e = labelled(x, t); bar.Advance(); return e; };
        int C = config.InChannels, S = config.ImageSize, len = C * S * S, last = diffusion.NumTimesteps - 1;

        // 1. x_0 → x_T by the reverse ODE; 2. x_T → x̂_0 by DDIM with eta 0.
        var x0 = Tensor.FromArray(pixels, 1, C, S, S);
        var xT = diffusion.DdimReverseLoop(model, x0, targetStep: last);
        var recon = diffusion.DdimSampleLoop(model, [1, C, S, S], null, xT, eta: 0, startStep: last).ToArray();
        bar.Dispose();

        var (mse, psnr, mse8, psnr8) = Errors(pixels, recon);
        var strip = new float[3 * len];
        pixels.CopyTo(strip, 0);
        var latent = xT.ToArray();
        for (int k = 0; k < len; k++) strip[len + k] = latent[k] * 0.5f;
        recon.CopyTo(strip, 2 * len);
        ImageFile.Write(outPath, ImageGrid.Make(strip, 3, C, S, S, columns: 3));
        if (latentPath is not null) Npy.WriteFloat32(latentPath, [1, C, S, S], latent);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"reconstruction error: MSE {mse:G4}, PSNR {psnr:F2} dB on [-1, 1] values (peak-to-peak 2); MSE {mse8:G4}, PSNR {psnr8:F2} dB on 8-bit pixels [0, 255]"));
        stdout.WriteLine($"DDIM inversion over {steps} steps; wrote original | x_T / 2 | reconstruction to {outPath}");
        return 0;
    }

    /// <summary>MSE and PSNR of the reconstruction in model units ([-1, 1], PSNR = 10 log10(2² / MSE)) and on the
    /// 8-bit pixels that PNG stores (PSNR = 10 log10(255² / MSE)). A perfect match has PSNR +∞.</summary>
    public static (double Mse, double Psnr, double Mse8, double Psnr8) Errors(float[] original, float[] reconstruction)
    {
        double se = 0, se8 = 0;
        for (int k = 0; k < original.Length; k++)
        {
            double d = (double)Math.Clamp(reconstruction[k], -1f, 1f) - original[k];
            se += d * d;
            double d8 = ImageGrid.ToByte(reconstruction[k]) - ImageGrid.ToByte(original[k]);
            se8 += d8 * d8;
        }
        double mse = se / original.Length, mse8 = se8 / original.Length;
        return (mse, 10 * Math.Log10(4 / mse), mse8, 10 * Math.Log10(255.0 * 255.0 / mse8));
    }
}

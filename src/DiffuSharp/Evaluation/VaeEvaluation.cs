// How well an autoencoder reproduces images: reconstructions from the posterior mode (what a latent diffusion model's
// decoder sees at the end of sampling is a latent; the mode is the encoder's best guess of it), clamped to [-1, 1]
// and cropped back to the dataset's size, and their PSNR. PSNR is on images in [0, 1] (peak 1):
// 10·log10(1 / MSE), both pooled (the MSE of all pixels of all images) and averaged per image, with the standard
// deviation across images (the form of Stable Diffusion's VAE cards: "PSNR 24.5 +/- 3.7").
using DiffuSharp.Data;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Evaluation;

/// <summary>PSNR of reconstructions against the originals, on images in [0, 1] (peak 1).</summary>
/// <param name="PooledDb">10·log10(1 / MSE) of all pixels of all images together, in dB</param>
/// <param name="MeanPerImageDb">the mean of each image's own PSNR, in dB</param>
/// <param name="StdPerImageDb">the standard deviation of the images' PSNRs (population), in dB</param>
/// <param name="Mse">the pooled mean squared error on the [0, 1] scale</param>
/// <param name="Count">how many images were compared</param>
public sealed record PsnrResult(double PooledDb, double MeanPerImageDb, double StdPerImageDb, double Mse, int Count);

/// <summary>How well an autoencoder reproduces images: reconstructions from the posterior mode, clamped to [-1, 1] and
/// cropped to the dataset's size, and their PSNR.</summary>
public static class VaeEvaluation
{
    /// <summary>Reconstructions of the first <paramref name="count"/> images of <paramref name="data"/> (unpadded, in [-1, 1]),
    /// each padded by <paramref name="pad"/> (value −1) for the VAE and cropped back: (count, C, H, W) in [-1, 1].</summary>
    public static float[] Reconstruct(AutoencoderKL vae, ImageDataset data, int pad, int count, int batch = 100)
    {
        if (count < 1 || count > data.Count) throw new ArgumentException($"count must be in 1..{data.Count}, got {count}");
        int C = data.Channels, H = data.Height, W = data.Width, len = data.ImageLength;
        var result = new float[count * len];
        using var _ = Tensor.NoGrad();
        for (int start = 0; start < count; start += batch)
        {
            int b = Math.Min(batch, count - start);
            var slice = new ImageDataset(data.Images.AsSpan(start * len, b * len).ToArray(), b, C, H, W);
            var padded = ImagePadding.Pad(slice, pad);
            using var scope = TensorScope.Begin();
            var x = Tensor.FromSpan(padded.Images, b, C, padded.Height, padded.Width);
            var recon = vae.Decode(vae.Encode(x).Mode()).ToArray();
            var cropped = ImagePadding.Crop(recon, b, C, padded.Height, padded.Width, pad);
            for (int k = 0; k < cropped.Length; k++) result[start * len + k] = Math.Clamp(cropped[k], -1f, 1f);
        }
        return result;
    }

    /// <summary>PSNR of reconstructions against originals, both (count, ...) in [-1, 1], measured on [0, 1] values.</summary>
    public static PsnrResult Psnr(ReadOnlySpan<float> original, ReadOnlySpan<float> reconstruction, int count)
    {
        if (original.Length != reconstruction.Length || count < 1 || original.Length % count != 0)
            throw new ArgumentException($"PSNR: {original.Length} original and {reconstruction.Length} reconstructed values for {count} images");
        int len = original.Length / count;
        double total = 0, sumDb = 0, sumDb2 = 0;
        for (int i = 0; i < count; i++)
        {
            double se = 0;
            for (int k = i * len; k < (i + 1) * len; k++)
            {
                double d = 0.5 * ((double)Math.Clamp(reconstruction[k], -1f, 1f) - original[k]);   // [0, 1] units
                se += d * d;
            }
            total += se;
            double db = 10 * Math.Log10(1.0 / Math.Max(se / len, 1e-20));
            sumDb += db;
            sumDb2 += db * db;
        }
        double mse = total / original.Length, meanDb = sumDb / count;
        double stdDb = Math.Sqrt(Math.Max(0, sumDb2 / count - meanDb * meanDb));
        return new PsnrResult(10 * Math.Log10(1.0 / mse), meanDb, stdDb, mse, count);
    }
}

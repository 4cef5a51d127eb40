// The VAE posterior of every training image, computed once: a latent diffusion model trains on latents, and
// encoding each batch again every step would cost more than the UNet step itself on these sizes. Stored are the
// posterior's mean and std per image; a training step draws z = mean + std·ε (as Stable Diffusion's training
// scripts sample latent_dist each step) and multiplies by the VAE's scaling_factor. Saved as one safetensors file
// ("mean", "std": (N, latent, h, w) float32; "labels" when the data has them, as float32) with the scaling factor in
// its metadata.
using System.Globalization;
using DiffuSharp.Data;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.NN.Diffusers;

namespace DiffuSharp.Training;

/// <summary>Every training image's VAE posterior (mean and std) and the VAE's scaling factor.</summary>
public sealed class LatentCache
{
    /// <param name="mean">(N, C, h, w) posterior means</param>
    /// <param name="std">(N, C, h, w) posterior standard deviations</param>
    /// <summary>A cache of <paramref name="count"/> posteriors of shape <paramref name="latentShape"/> (C, h, w).</summary>
    public LatentCache(float[] mean, float[] std, int count, int[] latentShape, double scalingFactor, int[]? labels = null)
    {
        long len = (long)count * latentShape[0] * latentShape[1] * latentShape[2];
        if (latentShape.Length != 3 || mean.Length != len || std.Length != len)
            throw new ArgumentException($"LatentCache: {count} latents of shape ({string.Join(", ", latentShape)}) need {len} values, got {mean.Length} means and {std.Length} stds");
        if (labels is not null && labels.Length != count) throw new ArgumentException($"LatentCache: {count} latents but {labels.Length} labels");
        (Mean, Std, Count, LatentShape, ScalingFactor, Labels) = (mean, std, count, latentShape, scalingFactor, labels);
    }

    /// <summary>(N, C, h, w) posterior means, unscaled.</summary>
    public float[] Mean { get; }
    /// <summary>(N, C, h, w) posterior standard deviations, unscaled.</summary>
    public float[] Std { get; }
    /// <summary>N, the number of images.</summary>
    public int Count { get; }
    /// <summary>(C, h, w) of one latent.</summary>
    public int[] LatentShape { get; }
    /// <summary>The VAE's scaling_factor that <see cref="Sample"/> multiplies by.</summary>
    public double ScalingFactor { get; }
    /// <summary>The images' class labels, when the data had them.</summary>
    public int[]? Labels { get; }
    /// <summary>Values per latent: C·h·w.</summary>
    public int LatentLength => LatentShape[0] * LatentShape[1] * LatentShape[2];

    /// <summary>Encodes every image of <paramref name="data"/> (padded by <paramref name="pad"/> with −1 to the VAE's size).</summary>
    public static LatentCache Encode(AutoencoderKL vae, ImageDataset data, int pad, int batch = 100)
    {
        var c = vae.Config;
        int size = data.Height + 2 * pad, f = 1 << (c.BlockOutChannels.Length - 1);
        if (data.Channels != c.InChannels || size != c.SampleSize || data.Width != data.Height)
            throw new ArgumentException($"LatentCache: ({data.Channels}, {data.Height}, {data.Width}) images padded by {pad} do not fit a VAE of ({c.InChannels}, {c.SampleSize}, {c.SampleSize})");
        int[] shape = [c.LatentChannels, size / f, size / f];
        int len = shape[0] * shape[1] * shape[2];
        var mean = new float[(long)data.Count * len];
        var std = new float[mean.Length];
        using var _ = Tensor.NoGrad();
        for (int start = 0; start < data.Count; start += batch)
        {
            int b = Math.Min(batch, data.Count - start);
            var slice = ImagePadding.Pad(new ImageDataset(data.Images.AsSpan(start * data.ImageLength, b * data.ImageLength).ToArray(), b, data.Channels, data.Height, data.Width), pad);
            using var scope = TensorScope.Begin();
            var post = vae.Encode(Tensor.FromSpan(slice.Images, b, c.InChannels, size, size));
            post.Mean.ToArray().CopyTo(mean, (long)start * len);
            post.Std.ToArray().CopyTo(std, (long)start * len);
        }
        return new LatentCache(mean, std, data.Count, shape, c.ScalingFactor, data.Labels);
    }

    /// <summary>scaling_factor · (mean + std·ε) of the given images, ε from <paramref name="rng"/>: (indices.Length, C, h, w).</summary>
    public Tensor Sample(ReadOnlySpan<int> indices, Rng rng)
    {
        int len = LatentLength;
        var eps = new float[indices.Length * len];
        rng.FillNormal(eps);
        float s = (float)ScalingFactor;
        for (int i = 0; i < indices.Length; i++)
        {
            int at = indices[i] * len;
            for (int k = 0; k < len; k++) eps[i * len + k] = s * (Mean[at + k] + Std[at + k] * eps[i * len + k]);
        }
        return Tensor.FromArray(eps, indices.Length, LatentShape[0], LatentShape[1], LatentShape[2]);
    }

    /// <summary>Writes the cache as one safetensors file (atomically).</summary>
    public void Save(string path)
    {
        int[] shape = [Count, .. LatentShape];
        var tensors = new List<(string, int[], float[])> { ("mean", shape, Mean), ("std", shape, Std) };
        if (Labels is not null) tensors.Add(("labels", [Count], Labels.Select(l => (float)l).ToArray()));
        SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["scaling_factor"] = ScalingFactor.ToString("R", CultureInfo.InvariantCulture) });
    }

    /// <summary>Reads <see cref="Save"/>'s file; a malformed or non-finite one is an InvalidDataException naming it.</summary>
    public static LatentCache Load(string path)
    {
        var st = SafeTensorsFile.Open(path);
        if (!st.Metadata.TryGetValue("scaling_factor", out var sf) || !double.TryParse(sf, NumberStyles.Float, CultureInfo.InvariantCulture, out double scale))
            throw new InvalidDataException($"{path}: metadata lacks a numeric \"scaling_factor\"");
        var info = st.Info("mean");
        if (info.Shape.Length != 4) throw new InvalidDataException($"{path}: \"mean\" must be (N, C, h, w)");
        int[] shape = [(int)info.Shape[1], (int)info.Shape[2], (int)info.Shape[3]];
        float[] mean = st.ReadFloat32("mean"), std = st.ReadFloat32("std");
        ModelFolder.RefuseNonFinite(mean, "mean", path);
        ModelFolder.RefuseNonFinite(std, "std", path);
        int[]? labels = st.Contains("labels") ? st.ReadFloat32("labels").Select(v => (int)v).ToArray() : null;
        try { return new LatentCache(mean, std, (int)info.Shape[0], shape, scale, labels); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}"); }
    }
}

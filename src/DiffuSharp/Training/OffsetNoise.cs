// Offset noise (N. Lin, "Diffusion with Offset Noise", crosslabs.org 2023; diffusers' train_text_to_image.py
// --noise-offset): ε = z + offset · z' with z ~ N(0, I) per pixel and z' ~ N(0, 1) per (sample, channel), so the
// model also learns to change an image's mean brightness, which plain per-pixel noise almost never perturbs.
// The same ε is both diffused into x_t and the regression target, as in diffusers.
namespace DiffuSharp.Training;

/// <summary>Offset noise (diffusers' --noise_offset): training noise plus offset·N(0, 1) per (sample, channel), so the
/// model also learns to change an image's mean brightness.</summary>
public static class OffsetNoise
{
    /// <summary>ε: (B, C, H, W) = N(0, 1) per element + offset · N(0, 1) per (B, C, 1, 1). The per-pixel draw comes
    /// first, then the B·C offsets, all from <paramref name="rng"/>.</summary>
    public static Tensor Draw(int[] shape, double offset, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(rng);
        if (shape.Length != 4) throw new ArgumentException($"offset noise expects (B, C, H, W), got rank {shape.Length}", nameof(shape));
        if (!(offset >= 0) || double.IsInfinity(offset)) throw new ArgumentOutOfRangeException(nameof(offset), $"noise offset must be a non-negative number, got {offset}");
        var eps = Tensor.RandN(shape, rng);                                          // (B, C, H, W)
        if (offset == 0) return eps;
        var shift = Tensor.RandN([shape[0], shape[1], 1, 1], rng);                   // (B, C, 1, 1)
        return eps + shift * offset;
    }
}

// The AutoencoderKL training objective of latent diffusion (Rombach et al. 2022, App. G; CompVis
// taming/modules/losses LPIPSWithDiscriminator without the perceptual and adversarial terms): a reconstruction loss
// summed over each image's pixels, plus kl_weight times the KL divergence of the posterior N(μ, σ²) from N(0, I)
// summed over each image's latent elements, both averaged over the batch. The decoder sees a sample of the
// posterior (the reparameterisation μ + σ·ε, so gradients reach μ and σ). SD used kl_weight 1e-6: the KL only keeps
// the latent scale from drifting, and the pipelines' scaling_factor (1 / std of the latents) normalises it after.
namespace DiffuSharp.Training;

/// <summary>The per-pixel reconstruction penalty: |x̂ − x| (SD's choice) or (x̂ − x)².</summary>
public enum ReconstructionLoss
{
    /// <summary>|x̂ − x| per pixel, Stable Diffusion's choice.</summary>
    L1,
    /// <summary>(x̂ − x)² per pixel.</summary>
    L2,
}

/// <summary>One batch's loss terms; Loss is what is back-propagated. Rec and Kl are per image (sums over its pixels /
/// latent elements, averaged over the batch); Reconstruction is the decoded batch (B, C, H, W).</summary>
public sealed record VaeLossTerms(Tensor Loss, Tensor Rec, Tensor Kl, Tensor Reconstruction);

/// <summary>The AutoencoderKL objective of latent diffusion without perceptual or adversarial terms: a per-image
/// reconstruction loss on a posterior sample plus kl_weight times the KL from N(0, I), averaged over the
/// batch.</summary>
public static class VaeLoss
{
    /// <summary>x: (B, C, H, W) in [-1, 1]; noise: (B, latent, h, w) ~ N(0, 1), the posterior sample's draw.</summary>
    public static VaeLossTerms Compute(NN.Diffusers.AutoencoderKL vae, Tensor x, Tensor noise, ReconstructionLoss kind, double klWeight)
    {
        int B = x.Dim(0);
        var posterior = vae.Encode(x);
        var z = posterior.Sample(noise);                                   // (B, latent, h, w)
        var recon = vae.Decode(z);                                         // (B, C, H, W)
        var d = recon - x;
        Tensor perPixel = kind == ReconstructionLoss.L2 ? d.Square() : Abs(d);
        var rec = perPixel.Sum() * (1.0 / B);
        // KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − log σ²) per latent element.
        var kl = (posterior.Mean.Square() + posterior.Var - 1.0 - posterior.LogVar).Sum() * (0.5 / B);
        return new VaeLossTerms(rec + klWeight * kl, rec, kl, recon);
    }

    /// <summary>|d| as where(d ≥ 0, d, −d): the gradient is sign(d) (+1 at 0, as PyTorch's abs is 0 there; a measure-zero choice).</summary>
    internal static Tensor Abs(Tensor d)
    {
        var sign = Tensor.Uninitialized(d.Shape);
        var dv = d.Contiguous().Data;
        var s = sign.Data;
        for (int i = 0; i < s.Length; i++) s[i] = dv[i] >= 0 ? 1f : 0f;
        return Tensor.Where(sign, d, -d);
    }
}

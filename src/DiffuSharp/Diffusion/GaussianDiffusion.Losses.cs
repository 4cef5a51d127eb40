// Training objectives: the simple MSE loss (DDPM eq. 14), the hybrid loss with a learned variance trained through a
// frozen mean (iDDPM §3.1), and the variational bound term L_t in bits (DDPM eq. 5, iDDPM eqs. 4–6).
// Reference: openai/improved-diffusion, improved_diffusion/gaussian_diffusion.py (training_losses, _vb_terms_bpd).
// Deviations: noise is explicit (a Tensor or an Rng); model kwargs live in the DiffusionModel closure.
// Additions (the objectives of diffusers' training scripts, e.g. examples/text_to_image/train_text_to_image.py):
// a v target for ModelMeanType.Velocity and min-SNR-γ weighting of the MSE term (Hang et al. 2023, "Efficient
// Diffusion Training via Min-SNR Weighting Strategy"): SNR_t = ᾱ_t / (1 − ᾱ_t), weight min(SNR_t, γ) / SNR_t for
// ε, min(SNR_t, γ) / (SNR_t + 1) for v, min(SNR_t, γ) for x_0, computed in float64 and rounded once.
namespace DiffuSharp.Diffusion;

/// <summary>One VB term per sample (B), in bits per dimension, and the model's x_0 prediction.</summary>
public sealed record VbTerms(Tensor Output, Tensor PredXStart);

public partial class GaussianDiffusion
{
    static readonly Tensor Ln2 = Tensor.Scalar((float)Math.Log(2.0));

    /// <summary>
    /// The term L_t of the variational bound for each sample, in bits per dimension: KL(q(x_{t−1} | x_t, x_0) ‖
    /// p(x_{t−1} | x_t)) for t &gt; 0 and the decoder NLL −log p(x_0 | x_1) at t = 0. x0, xt: (B, C, H, W).
    /// </summary>
    public VbTerms VbTermsBpd(DiffusionModel model, Tensor x0, Tensor xt, int[] t, bool clipDenoised = true)
    {
        // 1. The true posterior and the model's reverse step.
        var truth = QPosteriorMeanVariance(x0, xt, t);
        var p = PMeanVariance(model, xt, t, clipDenoised);
        // 2. L_{t−1} = KL(q ‖ p) (DDPM eq. 5), nats → bits (÷ ln 2, in float32 as the reference).
        var kl = DiffusionLosses.MeanFlat(DiffusionLosses.NormalKl(truth.Mean, truth.LogVariance, p.Mean, p.LogVariance)) / Ln2;
        // 3. L_0 = −log p(x_0 | x_1) with the discretised decoder (DDPM §3.3), σ = exp(½ log σ²).
        var decoderNll = DiffusionLosses.MeanFlat(-DiffusionLosses.DiscretizedGaussianLogLikelihood(x0, p.Mean, p.LogVariance * 0.5)) / Ln2;
        // 4. The decoder term where t = 0, the KL elsewhere.
        var isFirst = new float[t.Length];
        for (int b = 0; b < t.Length; b++) isFirst[b] = t[b] == 0 ? 1f : 0f;
        return new VbTerms(Tensor.Where(Tensor.Wrap(isFirst, t.Length), decoderNll, kl), p.PredXStart);
    }

    /// <summary>
    /// Training losses at timesteps t (one per sample) for x_0: (B, C, H, W). Loss is (B); Mse and Vb are set for the
    /// MSE loss types (Vb only with a learned variance). noise: ε as a (B, C, H, W) tensor, or an Rng to draw it.
    /// <paramref name="snrGamma"/> &gt; 0 weights the MSE term by min-SNR-γ (Loss carries the weighted term, Mse the
    /// plain one).
    /// </summary>
    public TrainingLossTerms TrainingLosses(DiffusionModel model, Tensor x0, int[] t, NoiseSource noise, double snrGamma = 0)
    {
        if (!(snrGamma >= 0)) throw new ArgumentOutOfRangeException(nameof(snrGamma), $"snr_gamma must be >= 0 (0 = off), got {snrGamma}");
        ArgumentNullException.ThrowIfNull(model);
        CheckBatch(x0, t, nameof(TrainingLosses));
        // 1. x_t ~ q(x_t | x_0) with the given ε (DDPM Algorithm 1, line 5).
        var eps = noise.Draw(x0, nameof(TrainingLosses));
        var xt = QSample(x0, t, eps);

        // 2a. KL losses: the VB term itself, times T for an estimate of the whole bound.
        if (LossType is LossType.Kl or LossType.RescaledKl)
        {
            if (snrGamma > 0) throw new ArgumentException("min-SNR-γ weighting applies to the MSE loss, not to the KL (use_kl) objective", nameof(snrGamma));
            var loss = VbTermsBpd(model, x0, xt, t, clipDenoised: false).Output;
            if (LossType == LossType.RescaledKl) loss *= NumTimesteps;
            return new TrainingLossTerms(loss, null, null);
        }

        // 2b. MSE losses: one model call on x_t.
        var output = CallModel(model, xt, t);                                  // (B, C or 2C, H, W)
        var modelOutput = output;
        Tensor? vb = null;
        if (ModelVarType is ModelVarType.Learned or ModelVarType.LearnedRange)
        {
            int C = x0.Dim(1);
            var parts = output.Split([C, C], 1);                             // mean part, variance part
            modelOutput = parts[0];
            // 3. L_vlb trains the variance only: the mean half is detached, so its gradient comes from the MSE alone
            //    (iDDPM §3.1, "stop-gradient on μ_θ").
            var frozen = Tensor.Concat([parts[0].Detach(), parts[1]], 1);    // (B, 2C, H, W)
            vb = VbTermsBpd((_, _) => frozen, x0, xt, t, clipDenoised: false).Output;
            // 4. λ = 0.001 per bound: T·L_t estimates L_vlb, so scale L_t by T/1000 (the reference's "divide by 1000").
            if (LossType == LossType.RescaledMse) vb *= NumTimesteps / 1000.0;
        }

        // 5. ‖target − output‖², target = μ̃_t, x_0 or ε by what the model predicts (DDPM eq. 14 for ε).
        var target = ModelMeanType switch
        {
            ModelMeanType.PreviousX => QPosteriorMeanVariance(x0, xt, t).Mean,
            ModelMeanType.StartX => x0,
            ModelMeanType.Velocity => Velocity(x0, eps, t),
            _ => eps,
        };
        var mse = DiffusionLosses.MeanFlat((target - modelOutput).Square());
        // 6. Min-SNR-γ: each sample's MSE times its weight (the VB term stays unweighted).
        var weighted = snrGamma > 0 ? mse * Tensor.Wrap(MinSnrWeights(t, snrGamma), t.Length) : mse;
        return new TrainingLossTerms(vb is null ? weighted : weighted + vb, mse, vb);
    }

    /// <summary>The min-SNR-γ weight of each sample's MSE (B), for what the model predicts (see the file header).</summary>
    public float[] MinSnrWeights(int[] t, double gamma)
    {
        if (!(gamma > 0)) throw new ArgumentOutOfRangeException(nameof(gamma), $"min-SNR gamma must be positive, got {gamma}");
        var w = new float[t.Length];
        for (int b = 0; b < t.Length; b++)
        {
            double a = _alphasCumprod[t[b]], snr = a / (1.0 - a), clipped = Math.Min(snr, gamma);
            w[b] = (float)(ModelMeanType switch
            {
                ModelMeanType.Epsilon => clipped / snr,
                ModelMeanType.Velocity => clipped / (snr + 1.0),
                ModelMeanType.StartX => clipped,
                _ => throw new InvalidOperationException("min-SNR-γ weighting is defined for ε, v and x_0 targets, not for x_{t−1}"),
            });
        }
        return w;
    }
}

// Training objectives: the simple MSE loss (DDPM eq. 14), the hybrid loss with a learned variance trained through a
// frozen mean (iDDPM §3.1), and the variational bound term L_t in bits (DDPM eq. 5, iDDPM eqs. 4–6).
// Reference: openai/improved-diffusion, improved_diffusion/gaussian_diffusion.py (training_losses, _vb_terms_bpd).
// Deviations: noise is explicit (a Tensor or an Rng); model kwargs live in the DiffusionModel closure.
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
    /// </summary>
    public TrainingLossTerms TrainingLosses(DiffusionModel model, Tensor x0, int[] t, NoiseSource noise)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckBatch(x0, t, nameof(TrainingLosses));
        // 1. x_t ~ q(x_t | x_0) with the given ε (DDPM Algorithm 1, line 5).
        var eps = noise.Draw(x0, nameof(TrainingLosses));
        var xt = QSample(x0, t, eps);

        // 2a. KL losses: the VB term itself, times T for an estimate of the whole bound.
        if (LossType is LossType.Kl or LossType.RescaledKl)
        {
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
            _ => eps,
        };
        var mse = DiffusionLosses.MeanFlat((target - modelOutput).Square());
        return new TrainingLossTerms(vb is null ? mse : mse + vb, mse, vb);
    }
}

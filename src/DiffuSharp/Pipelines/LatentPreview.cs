// Cheap previews of a run in progress: the clean latents x0 predicted at a step, and a fixed linear map from Stable
// Diffusion 1.x latents to RGB. The map is the 4×3 matrix sd-webui's "Approx cheap" live preview uses:
// rgb_c = Σ_l x0_l · M[l, c] on the scaled latents, then (rgb + 1) / 2 clamped to [0, 1]: a blurry image at 1/8 of the
// size for the cost of 12 multiply-adds per latent pixel, against a VAE decode's billions.
// x0 comes from the model output at the step (after guidance) and the scaled model input x_in, which every scheduler
// makes variance-preserving (x_in = √ᾱ_t x0 + √(1 − ᾱ_t) ε; σ-based schedulers divide by √(σ² + 1), i.e. ᾱ = 1/(σ² + 1)):
// x0 = (x_in − √(1 − ᾱ_t) ε̂) / √ᾱ_t for ε-prediction, √ᾱ_t x_in − √(1 − ᾱ_t) v̂ for v-prediction, the output itself for
// sample prediction. ᾱ at a fractional timestep (Karras σ) is interpolated linearly between its neighbours: exact at
// whole timesteps, a close approximation between them (for a preview only).
using DiffuSharp.Schedulers;

namespace DiffuSharp.Pipelines;

/// <summary>Cheap previews of a run in progress: the clean latents x0 predicted at a step, and sd-webui's "Approx
/// cheap" linear map from SD 1.x latents to RGB at 1/8 of the size.</summary>
public static class LatentPreview
{
    /// <summary>M[l, c]: latent channel l's contribution to colour c (R, G, B), for SD 1.x latents.</summary>
    public static readonly float[,] Sd1LatentToRgb =
    {
        { 0.298f, 0.207f, 0.208f },
        { 0.187f, 0.286f, 0.173f },
        { -0.158f, 0.189f, 0.264f },
        { -0.184f, -0.271f, -0.473f },
    };

    /// <summary>The clean latents predicted at timestep t. scaledInput: the model input (B, 4, h, w) after
    /// ScaleModelInput (without a 9-channel UNet's extra channels); modelOutput: the (guided) prediction (B, 4, h, w).</summary>
    public static Tensor PredictedX0(Scheduler scheduler, Tensor scaledInput, Tensor modelOutput, double t)
    {
        if (!ShapeUtil.Equal(scaledInput.ShapeSpan, modelOutput.ShapeSpan))
            throw new ArgumentException($"model input {ShapeUtil.Format(scaledInput.ShapeSpan)} and output {ShapeUtil.Format(modelOutput.ShapeSpan)} differ in shape");
        var table = scheduler.AlphasCumprod;
        double clamped = Math.Clamp(t, 0, table.Length - 1);
        int lo = (int)Math.Floor(clamped), hi = Math.Min(lo + 1, table.Length - 1);
        double alphaBar = table[lo] + (clamped - lo) * (table[hi] - table[lo]);
        double a = Math.Sqrt(alphaBar), s = Math.Sqrt(1 - alphaBar);
        return scheduler.Config.PredictionType switch
        {
            PredictionType.Epsilon => (scaledInput - s * modelOutput) / a,
            PredictionType.VPrediction => a * scaledInput - s * modelOutput,
            _ => modelOutput,
        };
    }

    /// <summary>Scaled SD 1.x latents (B, 4, h, w) → RGB (B, 3, h, w) in [0, 1] by <see cref="Sd1LatentToRgb"/>.</summary>
    public static Tensor CheapRgb(Tensor latents)
    {
        if (latents.Rank != 4 || latents.Dim(1) != 4)
            throw new ArgumentException($"the cheap preview takes SD 1.x latents (B, 4, h, w), got {ShapeUtil.Format(latents.ShapeSpan)}");
        int b = latents.Dim(0), n = latents.Dim(2) * latents.Dim(3);
        var x = latents.Contiguous().ToArray();
        var rgb = new float[b * 3 * n];
        for (int i = 0; i < b; i++)
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < n; p++)
                {
                    float v = 0;
                    for (int l = 0; l < 4; l++) v += x[(i * 4 + l) * n + p] * Sd1LatentToRgb[l, c];
                    rgb[(i * 3 + c) * n + p] = Math.Clamp(v * 0.5f + 0.5f, 0f, 1f);
                }
        return Tensor.FromArray(rgb, b, 3, latents.Dim(2), latents.Dim(3));
    }
}

// The diffusion half of improved-diffusion's flags, and the factory that turns them into a (spaced) diffusion.
// Reference: openai/improved-diffusion, improved_diffusion/script_util.py (model_and_diffusion_defaults,
// create_gaussian_diffusion).
// Defaults are those of model_and_diffusion_defaults() (what model.json's missing keys mean), not the keyword
// defaults of create_gaussian_diffusion, which differ for RescaleTimesteps and RescaleLearnedSigmas.
namespace DiffuSharp.Diffusion;

/// <summary>The diffusion half of a model's flags (what <see cref="DiffusionFactory.Create"/> builds); usually
/// taken from a model with <c>config.ToDiffusionConfig()</c> and changed with <c>with { TimestepRespacing = "50" }</c>
/// to sample in fewer steps.</summary>
public sealed record DiffusionConfig(
    int DiffusionSteps = 1000,                 // T of the trained process
    string NoiseSchedule = "linear",           // "linear" | "cosine"
    bool LearnSigma = false,                   // model outputs 2C channels, variance learned in range [β̃_t, β_t]
    bool SigmaSmall = false,                   // fixed variance β̃_t instead of β_t (when not learned)
    bool UseKl = false,                        // train on the rescaled VB bound instead of MSE
    bool PredictXStart = false,                // model predicts x_0 instead of ε
    bool RescaleTimesteps = true,              // model sees t·1000/T, so timesteps look like DDPM's whatever T is
    bool RescaleLearnedSigmas = true,          // rescaled MSE: the VB term of a learned variance weighted T/1000
    string TimestepRespacing = "",             // "" = every step; "ddim50", "250", "10,15,20" …
    bool PredictV = false)                     // model predicts v = √ᾱ ε − √(1−ᾱ) x_0 (DiffuSharp's addition)
{
    /// <summary>Checks every field; throws ArgumentException naming the bad one.</summary>
    public void Validate()
    {
        if (PredictV && PredictXStart) throw new ArgumentException("PredictV and PredictXStart are exclusive", nameof(PredictV));
        if (DiffusionSteps < 1) throw new ArgumentException($"DiffusionSteps must be positive, got {DiffusionSteps}", nameof(DiffusionSteps));
        Diffusion.NoiseSchedule.Parse(NoiseSchedule);
        if (!string.IsNullOrEmpty(TimestepRespacing)) Respacing.SpaceTimesteps(DiffusionSteps, TimestepRespacing);
    }
}

/// <summary>Builds the Gaussian diffusion (improved-diffusion's <c>create_gaussian_diffusion</c>) whose DDPM and DDIM
/// loops, losses and likelihoods a model is trained and sampled with.</summary>
public static class DiffusionFactory
{
    /// <summary>
    /// create_gaussian_diffusion: the named schedule over DiffusionSteps, loss RescaledKl (UseKl) / RescaledMse
    /// (RescaleLearnedSigmas) / Mse, mean ε, x_0 or v, variance learned-range / fixed-small / fixed-large, respaced
    /// to TimestepRespacing ("" keeps all steps).
    /// </summary>
    public static SpacedDiffusion Create(DiffusionConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        int steps = config.DiffusionSteps;
        var betas = NoiseSchedule.GetNamedBetaSchedule(config.NoiseSchedule, steps);
        var lossType = config.UseKl ? LossType.RescaledKl : config.RescaleLearnedSigmas ? LossType.RescaledMse : LossType.Mse;
        var meanType = config.PredictXStart ? ModelMeanType.StartX : config.PredictV ? ModelMeanType.Velocity : ModelMeanType.Epsilon;
        var varType = config.LearnSigma ? ModelVarType.LearnedRange : config.SigmaSmall ? ModelVarType.FixedSmall : ModelVarType.FixedLarge;
        var useTimesteps = string.IsNullOrEmpty(config.TimestepRespacing)
            ? Respacing.SpaceTimesteps(steps, [steps])
            : Respacing.SpaceTimesteps(steps, config.TimestepRespacing);
        return new SpacedDiffusion(useTimesteps, betas, meanType, varType, lossType, config.RescaleTimesteps);
    }
}

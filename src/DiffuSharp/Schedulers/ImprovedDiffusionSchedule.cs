// diffusers schedulers for models trained by improved-diffusion (openai/improved-diffusion, script_util.py
// create_gaussian_diffusion): the model's own β schedule (linear or cosine over its T, float64 there) becomes the
// scheduler's trained_betas; predict_xstart becomes prediction_type "sample", predict_v "v_prediction"; the fixed / learned variance picks
// DDPM's variance_type. Deviation from improved-diffusion: diffusers holds β and ᾱ in float32 (as these schedulers
// do), about 1e-7 relative from improved-diffusion's float64 tables.
// Timesteps: the schedulers count training steps 0..T−1; a model trained with rescale_timesteps expects t·1000/T,
// which the caller's model wrapper applies (GaussianDiffusion does the same in its own loops).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>Scheduler configs for improved-diffusion models.</summary>
public static class ImprovedDiffusionSchedule
{
    /// <summary>
    /// The config of diffusers' <paramref name="className"/> for a model whose diffusion is <paramref name="diffusion"/>:
    /// trained_betas = its named schedule, prediction_type sample/epsilon, clip_sample on (improved-diffusion's
    /// clip_denoised), ᾱ_prev = 1 before t = 0 (as its DDIM), and DDPM's variance from learn_sigma / sigma_small.
    /// </summary>
    public static SchedulerConfig ConfigFor(DiffusionConfig diffusion, string className = "DDIMScheduler")
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        diffusion.Validate();
        var betas = NoiseSchedule.GetNamedBetaSchedule(diffusion.NoiseSchedule, diffusion.DiffusionSteps);
        var c = SchedulerConfig.DefaultsFor("DDPMScheduler") with
        {
            NumTrainTimesteps = diffusion.DiffusionSteps,
            TrainedBetas = betas,
            PredictionType = diffusion.PredictXStart ? PredictionType.Sample : diffusion.PredictV ? PredictionType.VPrediction : PredictionType.Epsilon,
            ClipSample = true,
            VarianceType = diffusion.LearnSigma ? VarianceType.LearnedRange
                : diffusion.SigmaSmall ? VarianceType.FixedSmall : VarianceType.FixedLarge,
        };
        var r = c.As(className);
        // DDIM / PNDM: ᾱ before t = 0 is 1, as improved-diffusion's alphas_cumprod_prev[0] (PNDM's default is ᾱ_0)
        return SchedulerKeys.ClassReads(className, "set_alpha_to_one") ? r with { SetAlphaToOne = true } : r;
    }
}

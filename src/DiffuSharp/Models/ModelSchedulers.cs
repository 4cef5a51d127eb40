// diffusers' schedulers on an improved-diffusion model folder: the scheduler config of the model's own forward process
// (ImprovedDiffusionSchedule: its T and named β schedule as trained_betas, its prediction type and variance), from
// which every scheduler class takes what it reads, as diffusers' from_config does. Two choices differ from the
// classes' defaults, as improved-diffusion samples its models:
//   - timestep spacing "leading" (t = 0, T/n, …, T − T/n): improved-diffusion's schedules end with ᾱ_{T−1} ≈ 0 (the
//     cosine one at 2.4e-9, σ ≈ 2·10⁴). A σ-based solver that starts there ("linspace", "trailing") turns an ε error
//     of 1e-4 into a visible error in the first step; DDIM survives it only because it clips x0. Measured on the
//     shipped model: Euler a, Heun, UniPC at 20 steps give noise with "linspace" and garments with "leading".
//   - x0 clipped to [−1, 1] (improved-diffusion's clip_denoised) by the classes that can: thresholding with
//     sample_max_value 1, which clamps x0 to [−1, 1]; DDIM then takes ε from the clipped x0, as improved-diffusion's
//     ddim_sample does (use_clipped_model_output), so DDIMScheduler with "leading" spacing is its "ddimN" loop.
// --spacing and an explicit config override both.
using DiffuSharp.Schedulers;

namespace DiffuSharp.Models;

public static class ModelSchedulers
{
    /// <summary>The model's process as a scheduler config (<see cref="ImprovedDiffusionSchedule.ConfigFor"/>):
    /// num_train_timesteps = T, trained_betas = the named schedule's β, prediction_type from predict_xstart / predict_v.</summary>
    public static SchedulerConfig BaseConfig(ModelConfig model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return ImprovedDiffusionSchedule.ConfigFor(model.ToDiffusionConfig());
    }

    /// <summary>The scheduler <paramref name="sampler"/> (a CLI name such as "dpm++2m", an sd-webui name such as
    /// "DPM++ 2M Karras", or a diffusers class name) for <paramref name="model"/>: "leading" timesteps unless
    /// <paramref name="spacing"/> says otherwise, x0 clipped to [−1, 1] where the class can.</summary>
    public static Scheduler Create(ModelConfig model, string sampler, bool karras = false, TimestepSpacing? spacing = null, double eta = 0)
    {
        var config = SchedulerFactory.ConfigFor(sampler, BaseConfig(model), karras);
        config = config with { TimestepSpacing = spacing ?? TimestepSpacing.Leading };
        if (SchedulerKeys.ClassReads(config.ClassName, "thresholding"))
            config = config with { Thresholding = true, SampleMaxValue = 1.0 };
        // DDIM as improved-diffusion's ddim_sample: ε re-derived from the clipped x0
        return config.ClassName == "DDIMScheduler" ? new DdimScheduler(config, eta, useClippedModelOutput: true) : SchedulerFactory.Create(config, eta);
    }

    /// <summary>What the model's timestep input is for scheduler timestep t: t·1000/T when the model was trained with
    /// rescale_timesteps, else t.</summary>
    public static double TimestepScale(ModelConfig model) => model.RescaleTimesteps ? 1000.0 / model.DiffusionSteps : 1.0;
}

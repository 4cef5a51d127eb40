// diffusers' schedulers on an improved-diffusion model folder: the scheduler config of the model's own forward process
// (ImprovedDiffusionSchedule: its T and named β schedule as trained_betas, its prediction type and variance), from
// which every scheduler class takes what it reads, as diffusers' from_config does. improved-diffusion's schedules end
// at ᾱ_{T−1} ≈ 0 (the cosine one at 2.4e-9, σ ≈ 2·10⁴), where an ε error of 1e-4 is a visible error in x0; its own
// samplers survive because they clip x0 to [−1, 1] (clip_denoised). So:
//   - the classes that can clip x0 (DDPM, DDIM, DPM-Solver, DEIS, UniPC: thresholding with sample_max_value 1, which
//     clamps x0 to [−1, 1]) do, and keep their own timestep spacing (linspace from t = T − 1: starting lower, at
//     "leading"'s T − T/n, leaves signal in x_T that pure noise lacks: UniPC at 10 steps measured FD 129.6 with it);
//     DDIM then also takes ε from the clipped x0 (use_clipped_model_output), as improved-diffusion's ddim_sample.
//   - the classes that cannot (PNDM, LMS, Euler, Euler a, Heun, KDPM2 and its ancestral form) start at "leading"'s
//     T − T/n instead: from t = T − 1 their first step turns the network's error into noise.
// --spacing (or an explicit config) overrides the spacing for both.
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
    /// "DPM++ 2M Karras", or a diffusers class name) for <paramref name="model"/>: x0 clipped to [−1, 1] where the
    /// class can, "leading" timesteps where it cannot, <paramref name="spacing"/> overriding the spacing.</summary>
    public static Scheduler Create(ModelConfig model, string sampler, bool karras = false, TimestepSpacing? spacing = null, double eta = 0)
    {
        var config = SchedulerFactory.ConfigFor(sampler, BaseConfig(model), karras);
        bool clips = SchedulerKeys.ClassReads(config.ClassName, "thresholding");
        if (clips) config = config with { Thresholding = true, SampleMaxValue = 1.0 };
        if (spacing is not null || !clips) config = config with { TimestepSpacing = spacing ?? TimestepSpacing.Leading };
        // DDIM as improved-diffusion's ddim_sample: ε re-derived from the clipped x0
        return config.ClassName == "DDIMScheduler" ? new DdimScheduler(config, eta, useClippedModelOutput: true) : SchedulerFactory.Create(config, eta);
    }

    /// <summary>What the model's timestep input is for scheduler timestep t: t·1000/T when the model was trained with
    /// rescale_timesteps, else t.</summary>
    public static double TimestepScale(ModelConfig model) => model.RescaleTimesteps ? 1000.0 / model.DiffusionSteps : 1.0;
}

// diffusers' schedulers on an improved-diffusion model folder: the scheduler config of the model's own forward process
// (ImprovedDiffusionSchedule: its T and named β schedule as trained_betas, its prediction type and variance), from
// which every scheduler class takes what it reads, as diffusers' from_config does; everything else keeps the class's
// defaults (timestep spacing "linspace" for the σ-based and multistep solvers, "leading" for DDIM/DDPM/PNDM).
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
    /// "DPM++ 2M Karras", or a diffusers class name) for <paramref name="model"/>; <paramref name="spacing"/>
    /// overrides the class's timestep spacing.</summary>
    public static Scheduler Create(ModelConfig model, string sampler, bool karras = false, TimestepSpacing? spacing = null, double eta = 0)
    {
        var config = SchedulerFactory.ConfigFor(sampler, BaseConfig(model), karras);
        if (spacing is { } s) config = config with { TimestepSpacing = s };
        return SchedulerFactory.Create(config, eta);
    }

    /// <summary>What the model's timestep input is for scheduler timestep t: t·1000/T when the model was trained with
    /// rescale_timesteps, else t.</summary>
    public static double TimestepScale(ModelConfig model) => model.RescaleTimesteps ? 1000.0 / model.DiffusionSteps : 1.0;
}

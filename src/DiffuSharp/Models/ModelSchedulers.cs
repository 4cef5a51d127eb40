// diffusers' schedulers on an improved-diffusion model folder: the scheduler config of the model's own forward process
// (ImprovedDiffusionSchedule: its T and named β schedule as trained_betas, its prediction type and variance), from
// which every scheduler class takes what it reads, as diffusers' from_config does. improved-diffusion's schedules end
// at ᾱ_{T−1} ≈ 0 (the cosine one at 2.4e-9, σ ≈ 2·10⁴), where an ε error of 1e-4 is a visible error in x0; its own
// samplers survive because they clip x0 to [−1, 1] (clip_denoised). So every scheduler samples with x0 clipped, and
// keeps its own timestep spacing (starting lower, at "leading"'s T − T/n, leaves signal in x_T that pure noise lacks:
// grey backgrounds; FD 129 for UniPC and Heun at 10 steps):
//   - the classes that can clip x0 (DDPM, DDIM, DPM-Solver, DEIS, UniPC: thresholding with sample_max_value 1, which
//     clamps x0 to [−1, 1]) do it themselves; DDIM then also takes ε from the clipped x0 (use_clipped_model_output),
//     as improved-diffusion's ddim_sample.
//   - the classes that cannot (PNDM, LMS, Euler, Euler a, Heun, KDPM2 and its ancestral form) get the model's
//     prediction clipped before they see it (ClippedDenoiser, through Denoiser below), and the schedule up to
//     σ = 80 only (the σ_max Karras et al. 2022, "Elucidating the design space", use for improved-diffusion's
//     ImageNet models): their steps are linear in σ, and a first step from σ ≈ 2·10⁴ to a few units (Heun weighs
//     the second derivative by the whole interval) multiplies the network's error beyond what clipping repairs.
// --spacing (or an explicit config) overrides the spacing.
using DiffuSharp.Schedulers;

namespace DiffuSharp.Models;

/// <summary>diffusers' schedulers on an improved-diffusion model folder: the scheduler config of the model's own
/// forward process, with x0 clipped to [−1, 1] either by the scheduler (DDPM, DDIM, DPM-Solver, DEIS, UniPC) or by
/// <see cref="ClippedDenoiser"/> (the others).</summary>
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
    /// class can (sample with <see cref="Denoiser"/>, which clips for the others), <paramref name="spacing"/>
    /// overriding the class's own timestep spacing.</summary>
    public static Scheduler Create(ModelConfig model, string sampler, bool karras = false, TimestepSpacing? spacing = null, double eta = 0)
    {
        var config = SchedulerFactory.ConfigFor(sampler, BaseConfig(model), karras);
        bool clips = SchedulerKeys.ClassReads(config.ClassName, "thresholding");
        if (clips) config = config with { Thresholding = true, SampleMaxValue = 1.0 };
        if (spacing is not null) config = config with { TimestepSpacing = spacing.Value };
        if (!clips) config = LimitSigma(config, SigmaMax);
        // DDIM as improved-diffusion's ddim_sample: ε re-derived from the clipped x0
        return config.ClassName == "DDIMScheduler" ? new DdimScheduler(config, eta, useClippedModelOutput: true) : SchedulerFactory.Create(config, eta);
    }

    /// <summary>The largest σ the schedulers without x0 clipping of their own start from: 80, as Karras et al. (2022)
    /// for improved-diffusion's models.</summary>
    public const double SigmaMax = 80;

    /// <summary><paramref name="c"/> with its trained_betas cut after the last training step whose σ = √((1 − ᾱ)/ᾱ)
    /// is at most <paramref name="sigmaMax"/> (steps keep their numbers: the model sees the same t).</summary>
    internal static SchedulerConfig LimitSigma(SchedulerConfig c, double sigmaMax)
    {
        var betas = c.TrainedBetas ?? throw new ArgumentException("LimitSigma needs trained_betas", nameof(c));
        var alphaBar = Diffusion.NoiseSchedule.AlphasCumprod(betas);
        int n = Array.FindIndex(alphaBar, a => (1 - a) / a > sigmaMax * sigmaMax);
        if (n < 0) n = betas.Length;
        return n == betas.Length ? c : c with { NumTrainTimesteps = Math.Max(n, 1), TrainedBetas = betas[..Math.Max(n, 1)] };
    }

    /// <summary>The network <paramref name="model"/> as <paramref name="scheduler"/> (made by <see cref="Create"/>)
    /// should call it: as is where the scheduler clips x0 itself, else with its prediction clipped
    /// (<see cref="ClippedDenoiser"/>).</summary>
    public static Diffusion.DiffusionModel Denoiser(ModelConfig config, Scheduler scheduler, Diffusion.DiffusionModel model)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        return scheduler.Config.Thresholding ? model : ClippedDenoiser.Wrap(config, model, TimestepScale(config));
    }

    /// <summary>What the model's timestep input is for scheduler timestep t: t·1000/T when the model was trained with
    /// rescale_timesteps, else t.</summary>
    public static double TimestepScale(ModelConfig model) => model.RescaleTimesteps ? 1000.0 / model.DiffusionSteps : 1.0;
}

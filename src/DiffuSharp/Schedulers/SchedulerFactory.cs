// Builds schedulers by diffusers class name, by command-line name (ddpm, ddim, …, dpm++2m, unipc) and by the
// display names of sd-webui ("DPM++ 2M Karras", "Euler a"). The CLI names follow sd-webui's samplers and
// k-diffusion's functions as diffusers' docs map them (docs/source/en/api/schedulers/overview.md, "Mapping A1111/k-
// diffusion samplers to diffusers").
namespace DiffuSharp.Schedulers;

/// <summary>Creates diffusers schedulers by class name, CLI name or sd-webui display name.</summary>
public static class SchedulerFactory
{
    /// <summary>Builds the scheduler of <paramref name="config"/>.ClassName.</summary>
    /// <param name="eta">DDIM's η (ignored by the other classes).</param>
    /// <exception cref="NotSupportedException">A known diffusers class that this build does not implement.</exception>
    public static Scheduler Create(SchedulerConfig config, double eta = 0) => config.ClassName switch
    {
        "DDPMScheduler" => new DdpmScheduler(config),
        "DDIMScheduler" => new DdimScheduler(config, eta),
        "PNDMScheduler" => new PndmScheduler(config),
        "LMSDiscreteScheduler" => new LmsDiscreteScheduler(config),
        "EulerDiscreteScheduler" => new EulerDiscreteScheduler(config),
        "EulerAncestralDiscreteScheduler" => new EulerAncestralDiscreteScheduler(config),
        "HeunDiscreteScheduler" => new HeunDiscreteScheduler(config),
        "KDPM2DiscreteScheduler" => new KDpm2DiscreteScheduler(config),
        "KDPM2AncestralDiscreteScheduler" => new KDpm2AncestralDiscreteScheduler(config),
        // multistep / singlestep solvers (DPM-Solver, DEIS, UniPC):
        "DPMSolverMultistepScheduler" => new DpmSolverMultistepScheduler(config),
        "DPMSolverSinglestepScheduler" => new DpmSolverSinglestepScheduler(config),
        "DEISMultistepScheduler" => new DeisMultistepScheduler(config),
        "UniPCMultistepScheduler" => new UniPcMultistepScheduler(config),
        _ => throw new ArgumentException($"unknown scheduler class '{config.ClassName}' (known: {string.Join(", ", SchedulerKeys.ClassNames)})"),
    };

    /// <summary>One sampler as the command line and sd-webui name it: the diffusers class and the config changes it implies.</summary>
    public sealed record SamplerName(string CliName, string DisplayName, string ClassName, Func<SchedulerConfig, SchedulerConfig> Adjust);

    static SchedulerConfig Same(SchedulerConfig c) => c;

    /// <summary>The command-line samplers, in the order <c>sample --help</c> lists them.</summary>
    public static IReadOnlyList<SamplerName> Samplers { get; } =
    [
        new("ddpm", "DDPM", "DDPMScheduler", Same),
        new("ddim", "DDIM", "DDIMScheduler", Same),
        new("pndm", "PLMS", "PNDMScheduler", c => c with { SkipPrkSteps = true }),
        new("lms", "LMS", "LMSDiscreteScheduler", Same),
        new("euler", "Euler", "EulerDiscreteScheduler", Same),
        new("euler_a", "Euler a", "EulerAncestralDiscreteScheduler", Same),
        new("heun", "Heun", "HeunDiscreteScheduler", Same),
        new("kdpm2", "DPM2", "KDPM2DiscreteScheduler", Same),
        new("kdpm2_a", "DPM2 a", "KDPM2AncestralDiscreteScheduler", Same),
        new("dpm++2m", "DPM++ 2M", "DPMSolverMultistepScheduler", c => c with { AlgorithmType = AlgorithmType.DpmSolverPlusPlus, SolverOrder = 2 }),
        new("dpm++2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler", c => c with { AlgorithmType = AlgorithmType.SdeDpmSolverPlusPlus, SolverOrder = 2 }),
        new("dpm++3m", "DPM++ 3M", "DPMSolverMultistepScheduler", c => c with { AlgorithmType = AlgorithmType.DpmSolverPlusPlus, SolverOrder = 3 }),
        new("dpm_single", "DPM++ SDE", "DPMSolverSinglestepScheduler", Same),     // diffusers' A1111 table: "DPM++ SDE"; "DPM fast" has no diffusers class
        new("deis", "DEIS", "DEISMultistepScheduler", Same),
        new("unipc", "UniPC", "UniPCMultistepScheduler", Same),
    ];

    /// <summary>The CLI names, space-separated (for help texts and errors).</summary>
    public static string CliNames => string.Join(" ", Samplers.Select(s => s.CliName));

    /// <summary>
    /// Resolves a CLI name ("dpm++2m"), an sd-webui display name ("DPM++ 2M Karras", "Euler a"; a trailing " Karras"
    /// sets use_karras_sigmas) or a diffusers class name ("DDIMScheduler"), and derives the scheduler's config from
    /// <paramref name="baseConfig"/> (the model's schedule: betas, T, prediction type, …) as diffusers' from_config does:
    /// keys the class reads are kept, the others stay as they are for saving.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown name: the message lists the CLI names.</exception>
    public static SchedulerConfig ConfigFor(string name, SchedulerConfig baseConfig, bool karras = false)
    {
        var (sampler, nameKarras) = Find(name);
        var c = baseConfig.As(sampler?.ClassName ?? name);
        if (sampler is not null) c = sampler.Adjust(c);
        return karras || nameKarras ? c with { UseKarrasSigmas = true } : c;
    }

    /// <summary><see cref="ConfigFor"/> then <see cref="Create(SchedulerConfig, double)"/>.</summary>
    public static Scheduler Create(string name, SchedulerConfig baseConfig, bool karras = false, double eta = 0)
        => Create(ConfigFor(name, baseConfig, karras), eta);

    static (SamplerName? Sampler, bool Karras) Find(string name)
    {
        foreach (var s in Samplers)
            if (string.Equals(s.CliName, name, StringComparison.OrdinalIgnoreCase)) return (s, false);
        bool karras = name.EndsWith(" Karras", StringComparison.OrdinalIgnoreCase);
        string display = karras ? name[..^" Karras".Length] : name;
        foreach (var s in Samplers)
            if (string.Equals(s.DisplayName, display, StringComparison.OrdinalIgnoreCase)) return (s, karras);
        if (SchedulerKeys.IsKnownClass(name)) return (null, false);
        throw new ArgumentException($"unknown sampler '{name}' (samplers: {CliNames}; or a diffusers class name / sd-webui name such as \"DPM++ 2M Karras\")");
    }
}

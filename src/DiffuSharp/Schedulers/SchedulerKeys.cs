// Which config keys each diffusers scheduler class reads (the arguments of its __init__ in diffusers 0.27.2,
// src/diffusers/schedulers/scheduling_*.py), and the JSON spellings of the enum values.
// diffusers' from_config passes a class the keys it knows and keeps the rest as unused entries that save_config
// writes back; SchedulerConfig.Json does the same for keys of the classes listed here, and refuses any other key.
namespace DiffuSharp.Schedulers;

/// <summary>The diffusers scheduler classes DiffuSharp knows, the config keys each reads, and enum spellings.</summary>
public static class SchedulerKeys
{
    static readonly string[] Common = ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas"];
    static readonly string[] SolverCommon =
        ["solver_order", "prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value", "lower_order_final", "use_karras_sigmas"];

    static readonly Dictionary<string, HashSet<string>> ByClass = new(StringComparer.Ordinal)
    {
        ["DDPMScheduler"] = Keys("variance_type", "clip_sample", "prediction_type", "thresholding", "dynamic_thresholding_ratio",
            "clip_sample_range", "sample_max_value", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr"),
        ["DDIMScheduler"] = Keys("clip_sample", "set_alpha_to_one", "steps_offset", "prediction_type", "thresholding",
            "dynamic_thresholding_ratio", "clip_sample_range", "sample_max_value", "timestep_spacing", "rescale_betas_zero_snr"),
        ["PNDMScheduler"] = Keys("skip_prk_steps", "set_alpha_to_one", "prediction_type", "timestep_spacing", "steps_offset"),
        ["LMSDiscreteScheduler"] = Keys("use_karras_sigmas", "prediction_type", "timestep_spacing", "steps_offset"),
        ["EulerDiscreteScheduler"] = Keys("prediction_type", "interpolation_type", "use_karras_sigmas", "sigma_min", "sigma_max",
            "timestep_spacing", "timestep_type", "steps_offset", "rescale_betas_zero_snr"),
        ["EulerAncestralDiscreteScheduler"] = Keys("prediction_type", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr"),
        ["HeunDiscreteScheduler"] = Keys("prediction_type", "use_karras_sigmas", "clip_sample", "clip_sample_range", "timestep_spacing", "steps_offset"),
        ["KDPM2DiscreteScheduler"] = Keys("use_karras_sigmas", "prediction_type", "timestep_spacing", "steps_offset"),
        ["KDPM2AncestralDiscreteScheduler"] = Keys("use_karras_sigmas", "prediction_type", "timestep_spacing", "steps_offset"),
        ["DPMSolverMultistepScheduler"] = Keys([.. SolverCommon, "algorithm_type", "solver_type", "euler_at_final", "use_lu_lambdas",
            "final_sigmas_type", "lambda_min_clipped", "variance_type", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr"]),
        ["DPMSolverSinglestepScheduler"] = Keys([.. SolverCommon, "algorithm_type", "solver_type", "final_sigmas_type",
            "lambda_min_clipped", "variance_type"]),
        ["DEISMultistepScheduler"] = Keys([.. SolverCommon, "algorithm_type", "solver_type", "timestep_spacing", "steps_offset"]),
        ["UniPCMultistepScheduler"] = Keys([.. SolverCommon, "predict_x0", "solver_type", "disable_corrector", "solver_p",
            "timestep_spacing", "steps_offset"]),
    };

    static readonly HashSet<string> AllKeys = [.. ByClass.Values.SelectMany(k => k)];

    static HashSet<string> Keys(params string[] own) => new([.. Common, .. own], StringComparer.Ordinal);

    /// <summary>Keys that are metadata, never configuration (diffusers' ConfigMixin writes or reads them).</summary>
    public static bool IsMetadata(string key) => key is "_class_name" or "_diffusers_version" or "_use_default_values";

    /// <summary>The class names, in diffusers' spelling.</summary>
    public static IReadOnlyCollection<string> ClassNames => ByClass.Keys;

    /// <summary>True when <paramref name="className"/> is a scheduler class DiffuSharp implements, in diffusers'
    /// spelling (e.g. "EulerDiscreteScheduler").</summary>
    public static bool IsKnownClass(string className) => ByClass.ContainsKey(className);

    /// <summary>Whether <paramref name="className"/>'s __init__ reads <paramref name="key"/>.</summary>
    public static bool ClassReads(string className, string key) => ByClass.TryGetValue(className, out var k) && k.Contains(key);

    /// <summary>Whether any known class reads <paramref name="key"/>.</summary>
    public static bool AnyClassReads(string key) => AllKeys.Contains(key);

    /// <summary>The keys <paramref name="className"/> reads, sorted.</summary>
    public static IEnumerable<string> KeysOf(string className) => ByClass[className].Order(StringComparer.Ordinal);

    internal static readonly string[] BetaScheduleNames = ["linear", "scaled_linear", "squaredcos_cap_v2"];
    internal static readonly string[] PredictionTypeNames = ["epsilon", "sample", "v_prediction"];
    internal static readonly string[] TimestepSpacingNames = ["linspace", "leading", "trailing"];
    internal static readonly string[] VarianceTypeNames = ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"];
    internal static readonly string[] AlgorithmTypeNames = ["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++", "deis"];
    internal static readonly string[] SolverTypeNames = ["midpoint", "heun", "logrho", "bh1", "bh2"];
    internal static readonly string[] FinalSigmasTypeNames = ["zero", "sigma_min"];
    internal static readonly string[] TimestepTypeNames = ["discrete", "continuous"];
    internal static readonly string[] InterpolationTypeNames = ["linear", "log_linear"];

    /// <summary>diffusers' spelling of an enum value (the enums' order matches the name tables).</summary>
    public static string Spell<T>(T value) where T : struct, Enum => Names<T>()[Convert.ToInt32(value)];

    internal static string[] Names<T>() where T : struct, Enum => typeof(T).Name switch
    {
        nameof(BetaSchedule) => BetaScheduleNames,
        nameof(PredictionType) => PredictionTypeNames,
        nameof(TimestepSpacing) => TimestepSpacingNames,
        nameof(VarianceType) => VarianceTypeNames,
        nameof(AlgorithmType) => AlgorithmTypeNames,
        nameof(SolverType) => SolverTypeNames,
        nameof(FinalSigmasType) => FinalSigmasTypeNames,
        nameof(TimestepType) => TimestepTypeNames,
        nameof(InterpolationType) => InterpolationTypeNames,
        _ => throw new ArgumentException($"no diffusers spelling for {typeof(T).Name}"),
    };
}

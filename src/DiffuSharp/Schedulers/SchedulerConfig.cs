// The configuration of a diffusers scheduler: every key diffusers 0.27 reads for DDPM, DDIM, PNDM, LMS, Euler,
// Euler ancestral, Heun, KDPM2 (+ ancestral), DPM-Solver multistep / singlestep, DEIS and UniPC, with the JSON key
// names of `scheduler_config.json`. Reference: diffusers 0.27.2, src/diffusers/schedulers/scheduling_*.py (the
// __init__ arguments of each class) and configuration_utils.py (from_config / save_config).
// The record holds the union of all keys; which of them a class reads is SchedulerKeys' table, and the defaults
// of a class come from DefaultsFor. Reading and writing JSON is SchedulerConfig.Json.cs.
// Enums are append-only: their JSON spellings are diffusers' strings (see SchedulerKeys.Spellings).
namespace DiffuSharp.Schedulers;

/// <summary>diffusers' <c>beta_schedule</c>.</summary>
public enum BetaSchedule { Linear, ScaledLinear, SquaredCosCapV2 }

/// <summary>diffusers' <c>prediction_type</c>: what the model outputs.</summary>
public enum PredictionType { Epsilon, Sample, VPrediction }

/// <summary>diffusers' <c>timestep_spacing</c> (Table 2 of "Common Diffusion Noise Schedules and Sample Steps are Flawed").</summary>
public enum TimestepSpacing { Linspace, Leading, Trailing }

/// <summary>DDPM's <c>variance_type</c> (also read, as null or learned kinds, by DPM-Solver).</summary>
public enum VarianceType { FixedSmall, FixedSmallLog, FixedLarge, FixedLargeLog, Learned, LearnedRange }

/// <summary>DPM-Solver / DEIS <c>algorithm_type</c>.</summary>
public enum AlgorithmType { DpmSolver, DpmSolverPlusPlus, SdeDpmSolver, SdeDpmSolverPlusPlus, Deis }

/// <summary><c>solver_type</c>: midpoint / heun (DPM-Solver), logrho (DEIS), bh1 / bh2 (UniPC).</summary>
public enum SolverType { Midpoint, Heun, LogRho, Bh1, Bh2 }

/// <summary>DPM-Solver's <c>final_sigmas_type</c>: the sigma after the last step.</summary>
public enum FinalSigmasType { Zero, SigmaMin }

/// <summary>Euler's <c>timestep_type</c>: integer-valued timesteps or continuous 0.25·log σ (EDM).</summary>
public enum TimestepType { Discrete, Continuous }

/// <summary>Euler's <c>interpolation_type</c>: how σ(t) is interpolated between training timesteps.</summary>
public enum InterpolationType { Linear, LogLinear }

/// <summary>
/// A diffusers scheduler configuration (<c>scheduler_config.json</c>). Property defaults are DDPM/DDIM's; use
/// <see cref="DefaultsFor"/> for another class's. Values are checked when read from JSON (SchedulerConfig.Json.cs)
/// and when a scheduler is built.
/// </summary>
public sealed partial record SchedulerConfig
{
    /// <summary>diffusers' class name (<c>_class_name</c>), e.g. "DDIMScheduler".</summary>
    public string ClassName { get; init; } = "DDIMScheduler";
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.0001;
    public double BetaEnd { get; init; } = 0.02;
    public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.Linear;
    /// <summary>Explicit betas (length NumTrainTimesteps) that replace BetaStart/BetaEnd/BetaSchedule; null: none.</summary>
    public double[]? TrainedBetas { get; init; }
    public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;
    public TimestepSpacing TimestepSpacing { get; init; } = TimestepSpacing.Leading;
    /// <summary>Added to "leading" timesteps (Stable Diffusion 1.x uses 1, so its last step is t = 1, not 0).</summary>
    public int StepsOffset { get; init; }
    /// <summary>ᾱ before the first training step: 1 (true) or ᾱ_0 (false). DDIM and PNDM.</summary>
    public bool SetAlphaToOne { get; init; } = true;
    /// <summary>Clamp the predicted x0 to ±ClipSampleRange (pixel-space models; off for latents).</summary>
    public bool ClipSample { get; init; } = true;
    public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>Imagen's dynamic thresholding of the predicted x0 (pixel-space models only).</summary>
    public bool Thresholding { get; init; }
    public double DynamicThresholdingRatio { get; init; } = 0.995;
    public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>Karras et al. (2022) eq. 5 sigmas (ρ = 7) instead of the training sigmas at the spaced timesteps.</summary>
    public bool UseKarrasSigmas { get; init; }
    /// <summary>Rescale betas so that ᾱ_T = 0 (Lin et al. 2023, Algorithm 1).</summary>
    public bool RescaleBetasZeroSnr { get; init; }
    /// <summary>DDPM's step variance; for DPM-Solver null or a learned kind (then the model's ε half is used).</summary>
    public VarianceType? VarianceType { get; init; } = Schedulers.VarianceType.FixedSmall;
    public int SolverOrder { get; init; } = 2;
    /// <summary>Lower the solver order for the last steps (stabilises fewer than 15 steps).</summary>
    public bool LowerOrderFinal { get; init; } = true;
    public FinalSigmasType FinalSigmasType { get; init; } = FinalSigmasType.Zero;
    public AlgorithmType AlgorithmType { get; init; } = AlgorithmType.DpmSolverPlusPlus;
    public SolverType SolverType { get; init; } = SolverType.Midpoint;
    public bool EulerAtFinal { get; init; }
    public bool UseLuLambdas { get; init; }
    /// <summary>Clip λ(t) from below (for cosine schedules); −∞: no clipping.</summary>
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    /// <summary>UniPC: update with the data prediction (true) or the noise prediction.</summary>
    public bool PredictX0 { get; init; } = true;
    /// <summary>UniPC: the step indices where the corrector is skipped.</summary>
    public int[] DisableCorrector { get; init; } = [];
    public TimestepType TimestepType { get; init; } = TimestepType.Discrete;
    /// <summary>PNDM: PLMS only (true, what Stable Diffusion uses) or 4 Runge–Kutta warm-up steps first.</summary>
    public bool SkipPrkSteps { get; init; }
    public InterpolationType InterpolationType { get; init; } = InterpolationType.Linear;
    /// <summary>Euler with Karras sigmas: the σ range; null: the training schedule's.</summary>
    public double? SigmaMin { get; init; }
    public double? SigmaMax { get; init; }

    /// <summary>Keys of other scheduler classes found in the file, kept verbatim (raw JSON) so a save writes them
    /// back, as diffusers' from_config + save_config does. Sorted by key.</summary>
    public IReadOnlyDictionary<string, string> OtherKeys { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The defaults of diffusers' <paramref name="className"/> (its __init__ defaults).</summary>
    public static SchedulerConfig DefaultsFor(string className)
    {
        if (!SchedulerKeys.IsKnownClass(className))
            throw new ArgumentException($"unknown scheduler class '{className}' (known: {string.Join(", ", SchedulerKeys.ClassNames)})");
        var c = new SchedulerConfig { ClassName = className };
        return className switch
        {
            "DDPMScheduler" or "DDIMScheduler" => c,
            "PNDMScheduler" => c with { SetAlphaToOne = false },
            "LMSDiscreteScheduler" or "EulerDiscreteScheduler" or "EulerAncestralDiscreteScheduler"
                => c with { TimestepSpacing = TimestepSpacing.Linspace },
            "HeunDiscreteScheduler" => c with { BetaStart = 0.00085, BetaEnd = 0.012, ClipSample = false, TimestepSpacing = TimestepSpacing.Linspace },
            "KDPM2DiscreteScheduler" or "KDPM2AncestralDiscreteScheduler"
                => c with { BetaStart = 0.00085, BetaEnd = 0.012, TimestepSpacing = TimestepSpacing.Linspace },
            "DPMSolverMultistepScheduler" => c with { VarianceType = null, TimestepSpacing = TimestepSpacing.Linspace },
            "DPMSolverSinglestepScheduler" => c with { VarianceType = null, LowerOrderFinal = false, TimestepSpacing = TimestepSpacing.Linspace },
            "DEISMultistepScheduler" => c with { AlgorithmType = AlgorithmType.Deis, SolverType = SolverType.LogRho, TimestepSpacing = TimestepSpacing.Linspace },
            "UniPCMultistepScheduler" => c with { SolverType = SolverType.Bh2, TimestepSpacing = TimestepSpacing.Linspace },
            _ => c,
        };
    }

    /// <summary>Record equality with the arrays and <see cref="OtherKeys"/> compared by content.</summary>
    public bool Equals(SchedulerConfig? other)
    {
        if (other is null) return false;
        if (ReferenceEquals(this, other)) return true;
        return EqualsShallow(other)
            && (TrainedBetas is null ? other.TrainedBetas is null : other.TrainedBetas is not null && TrainedBetas.AsSpan().SequenceEqual(other.TrainedBetas))
            && DisableCorrector.AsSpan().SequenceEqual(other.DisableCorrector)
            && OtherKeys.Count == other.OtherKeys.Count
            && OtherKeys.All(kv => other.OtherKeys.TryGetValue(kv.Key, out var v) && v == kv.Value);
    }

    public override int GetHashCode() => HashCode.Combine(ClassName, NumTrainTimesteps, BetaStart, BetaEnd, BetaSchedule, PredictionType, TimestepSpacing, StepsOffset);

    // Field-by-field equality of everything but the three collection members.
    bool EqualsShallow(SchedulerConfig o) =>
        ClassName == o.ClassName && NumTrainTimesteps == o.NumTrainTimesteps && BetaStart.Equals(o.BetaStart)
        && BetaEnd.Equals(o.BetaEnd) && BetaSchedule == o.BetaSchedule && PredictionType == o.PredictionType
        && TimestepSpacing == o.TimestepSpacing && StepsOffset == o.StepsOffset && SetAlphaToOne == o.SetAlphaToOne
        && ClipSample == o.ClipSample && ClipSampleRange.Equals(o.ClipSampleRange) && Thresholding == o.Thresholding
        && DynamicThresholdingRatio.Equals(o.DynamicThresholdingRatio) && SampleMaxValue.Equals(o.SampleMaxValue)
        && UseKarrasSigmas == o.UseKarrasSigmas && RescaleBetasZeroSnr == o.RescaleBetasZeroSnr
        && VarianceType == o.VarianceType && SolverOrder == o.SolverOrder && LowerOrderFinal == o.LowerOrderFinal
        && FinalSigmasType == o.FinalSigmasType && AlgorithmType == o.AlgorithmType && SolverType == o.SolverType
        && EulerAtFinal == o.EulerAtFinal && UseLuLambdas == o.UseLuLambdas && LambdaMinClipped.Equals(o.LambdaMinClipped)
        && PredictX0 == o.PredictX0 && TimestepType == o.TimestepType && SkipPrkSteps == o.SkipPrkSteps
        && InterpolationType == o.InterpolationType && Nullable.Equals(SigmaMin, o.SigmaMin) && Nullable.Equals(SigmaMax, o.SigmaMax);
}

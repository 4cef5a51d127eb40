// The configuration of a diffusers scheduler: every key diffusers 0.27 reads for DDPM, DDIM, PNDM, LMS, Euler,
// Euler ancestral, Heun, KDPM2 (+ ancestral), DPM-Solver multistep / singlestep, DEIS and UniPC, with the JSON key
// names of `scheduler_config.json`. Reference: diffusers 0.27.2, src/diffusers/schedulers/scheduling_*.py (the
// __init__ arguments of each class) and configuration_utils.py (from_config / save_config).
// The record holds the union of all keys; which of them a class reads is SchedulerKeys' table, and the defaults
// of a class come from DefaultsFor. Reading and writing JSON is SchedulerConfig.Json.cs.
// Enums are append-only: their JSON spellings are diffusers' strings (see SchedulerKeys.Spellings).
namespace DiffuSharp.Schedulers;

/// <summary>diffusers' <c>beta_schedule</c>.</summary>
public enum BetaSchedule
{
    /// <summary>"linear": β evenly spaced from beta_start to beta_end.</summary>
    Linear,
    /// <summary>"scaled_linear": √β evenly spaced, then squared (Stable Diffusion's schedule).</summary>
    ScaledLinear,
    /// <summary>"squaredcos_cap_v2": iDDPM's cosine ᾱ schedule, each β capped at 0.999.</summary>
    SquaredCosCapV2,
}

/// <summary>diffusers' <c>prediction_type</c>: what the model outputs.</summary>
public enum PredictionType
{
    /// <summary>"epsilon": the noise ε added to x0.</summary>
    Epsilon,
    /// <summary>"sample": the clean sample x0 itself.</summary>
    Sample,
    /// <summary>"v_prediction": v = √ᾱ_t·ε − √(1 − ᾱ_t)·x0 (Salimans &amp; Ho 2022; SD 2.x 768).</summary>
    VPrediction,
}

/// <summary>diffusers' <c>timestep_spacing</c> (Table 2 of "Common Diffusion Noise Schedules and Sample Steps are Flawed").</summary>
public enum TimestepSpacing
{
    /// <summary>"linspace": n points evenly spaced from 0 to T − 1 inclusive, rounded.</summary>
    Linspace,
    /// <summary>"leading": multiples of T/n from 0, plus steps_offset (Stable Diffusion 1.x).</summary>
    Leading,
    /// <summary>"trailing": multiples of T/n counted down from T, so the first step is t = T − 1.</summary>
    Trailing,
}

/// <summary>DDPM's <c>variance_type</c> (also read, as null or learned kinds, by DPM-Solver).</summary>
public enum VarianceType
{
    /// <summary>"fixed_small": the posterior variance β̃_t.</summary>
    FixedSmall,
    /// <summary>"fixed_small_log": β̃_t computed through its (clipped) logarithm.</summary>
    FixedSmallLog,
    /// <summary>"fixed_large": β_t.</summary>
    FixedLarge,
    /// <summary>"fixed_large_log": log β_t (refused by DDPM, where diffusers gives NaN).</summary>
    FixedLargeLog,
    /// <summary>"learned": the model's second half of channels is the log variance.</summary>
    Learned,
    /// <summary>"learned_range": the model's second half interpolates between log β̃_t and log β_t (iDDPM eq. 15).</summary>
    LearnedRange,
}

/// <summary>DPM-Solver / DEIS <c>algorithm_type</c>.</summary>
public enum AlgorithmType
{
    /// <summary>"dpmsolver": DPM-Solver on the noise prediction.</summary>
    DpmSolver,
    /// <summary>"dpmsolver++": DPM-Solver++ on the data prediction x0 (what guided sampling should use).</summary>
    DpmSolverPlusPlus,
    /// <summary>"sde-dpmsolver": the stochastic form of DPM-Solver.</summary>
    SdeDpmSolver,
    /// <summary>"sde-dpmsolver++": the stochastic form of DPM-Solver++.</summary>
    SdeDpmSolverPlusPlus,
    /// <summary>"deis": DEIS's exponential integrator (DEISMultistepScheduler).</summary>
    Deis,
}

/// <summary><c>solver_type</c>: midpoint / heun (DPM-Solver), logrho (DEIS), bh1 / bh2 (UniPC).</summary>
public enum SolverType
{
    /// <summary>"midpoint": DPM-Solver's midpoint second-order update.</summary>
    Midpoint,
    /// <summary>"heun": DPM-Solver's Heun-style second-order update.</summary>
    Heun,
    /// <summary>"logrho": DEIS's update in log ρ.</summary>
    LogRho,
    /// <summary>"bh1": UniPC with B(h) = h (diffusers recommends it for unconditional sampling in under 10 steps).</summary>
    Bh1,
    /// <summary>"bh2": UniPC with B(h) = eʰ − 1 (the default, for other cases).</summary>
    Bh2,
}

/// <summary>DPM-Solver's <c>final_sigmas_type</c>: the sigma after the last step.</summary>
public enum FinalSigmasType
{
    /// <summary>"zero": the last step goes to σ = 0.</summary>
    Zero,
    /// <summary>"sigma_min": the last step goes to the training schedule's smallest σ.</summary>
    SigmaMin,
}

/// <summary>Euler's <c>timestep_type</c>: integer-valued timesteps or continuous 0.25·log σ (EDM).</summary>
public enum TimestepType
{
    /// <summary>"discrete": the spaced training timesteps.</summary>
    Discrete,
    /// <summary>"continuous": 0.25·log σ (EDM), used with v-prediction.</summary>
    Continuous,
}

/// <summary>Euler's <c>interpolation_type</c>: how σ(t) is interpolated between training timesteps.</summary>
public enum InterpolationType
{
    /// <summary>"linear": σ interpolated linearly in t between training timesteps.</summary>
    Linear,
    /// <summary>"log_linear": σ spaced evenly in log σ from the smallest to the largest training σ.</summary>
    LogLinear,
}

/// <summary>
/// A diffusers scheduler configuration (<c>scheduler_config.json</c>). Property defaults are DDPM/DDIM's; use
/// <see cref="DefaultsFor"/> for another class's. Values are checked when read from JSON (SchedulerConfig.Json.cs)
/// and when a scheduler is built.
/// </summary>
public sealed partial record SchedulerConfig
{
    /// <summary>diffusers' class name (<c>_class_name</c>), e.g. "DDIMScheduler".</summary>
    public string ClassName { get; init; } = "DDIMScheduler";
    /// <summary>num_train_timesteps: T, the length of the training schedule (default 1000).</summary>
    public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary>beta_start: β of the first training step (DDPM: 0.0001; Stable Diffusion: 0.00085).</summary>
    public double BetaStart { get; init; } = 0.0001;
    /// <summary>beta_end: β of the last training step (DDPM: 0.02; Stable Diffusion: 0.012).</summary>
    public double BetaEnd { get; init; } = 0.02;
    /// <summary>beta_schedule: how β goes from BetaStart to BetaEnd (ignored when TrainedBetas is set).</summary>
    public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.Linear;
    /// <summary>Explicit betas (length NumTrainTimesteps) that replace BetaStart/BetaEnd/BetaSchedule; null: none.</summary>
    public double[]? TrainedBetas { get; init; }
    /// <summary>prediction_type: what the model outputs (ε, x0 or v).</summary>
    public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;
    /// <summary>timestep_spacing: how the n inference timesteps are placed in the training range (this record's default
    /// "leading"; <see cref="DefaultsFor"/> gives each class's).</summary>
    public TimestepSpacing TimestepSpacing { get; init; } = TimestepSpacing.Leading;
    /// <summary>Added to "leading" timesteps (Stable Diffusion 1.x uses 1, so its last step is t = 1, not 0).</summary>
    public int StepsOffset { get; init; }
    /// <summary>ᾱ before the first training step: 1 (true) or ᾱ_0 (false). DDIM and PNDM.</summary>
    public bool SetAlphaToOne { get; init; } = true;
    /// <summary>Clamp the predicted x0 to ±ClipSampleRange (pixel-space models; off for latents).</summary>
    public bool ClipSample { get; init; } = true;
    /// <summary>clip_sample_range: the bound of ClipSample's clamp of the predicted x0.</summary>
    public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>Imagen's dynamic thresholding of the predicted x0 (pixel-space models only).</summary>
    public bool Thresholding { get; init; }
    /// <summary>dynamic_thresholding_ratio: the percentile of |x0| per sample that Thresholding clamps to (Imagen:
    /// 0.995).</summary>
    public double DynamicThresholdingRatio { get; init; } = 0.995;
    /// <summary>sample_max_value: the largest threshold dynamic thresholding may use (and the clamp bound it
    /// applies).</summary>
    public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>Karras et al. (2022) eq. 5 sigmas (ρ = 7) instead of the training sigmas at the spaced timesteps.</summary>
    public bool UseKarrasSigmas { get; init; }
    /// <summary>Rescale betas so that ᾱ_T = 0 (Lin et al. 2023, Algorithm 1).</summary>
    public bool RescaleBetasZeroSnr { get; init; }
    /// <summary>DDPM's step variance; for DPM-Solver null or a learned kind (then the model's ε half is used).</summary>
    public VarianceType? VarianceType { get; init; } = Schedulers.VarianceType.FixedSmall;
    /// <summary>solver_order: the order of the multistep solvers (DPM-Solver, DEIS: 1–3; UniPC: 1 or more).</summary>
    public int SolverOrder { get; init; } = 2;
    /// <summary>Lower the solver order for the last steps (stabilises fewer than 15 steps).</summary>
    public bool LowerOrderFinal { get; init; } = true;
    /// <summary>final_sigmas_type: the σ after the last step of DPM-Solver, 0 or the training schedule's smallest
    /// σ.</summary>
    public FinalSigmasType FinalSigmasType { get; init; } = FinalSigmasType.Zero;
    /// <summary>algorithm_type: DPM-Solver's variant (dpmsolver, dpmsolver++, their SDE forms) or DEIS's.</summary>
    public AlgorithmType AlgorithmType { get; init; } = AlgorithmType.DpmSolverPlusPlus;
    /// <summary>solver_type: the second-order update rule (midpoint or heun for DPM-Solver, logrho for DEIS, bh1 or bh2
    /// for UniPC).</summary>
    public SolverType SolverType { get; init; } = SolverType.Midpoint;
    /// <summary>euler_at_final: use a first-order (Euler) update for the last step (DPM-Solver), which helps few-step
    /// sampling.</summary>
    public bool EulerAtFinal { get; init; }
    /// <summary>use_lu_lambdas: place the timesteps uniformly in log-SNR λ as Lu et al. recommend (DPM-Solver
    /// multistep).</summary>
    public bool UseLuLambdas { get; init; }
    /// <summary>Clip λ(t) from below (for cosine schedules); −∞: no clipping.</summary>
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    /// <summary>UniPC: update with the data prediction (true) or the noise prediction.</summary>
    public bool PredictX0 { get; init; } = true;
    /// <summary>UniPC: the step indices where the corrector is skipped.</summary>
    public int[] DisableCorrector { get; init; } = [];
    /// <summary>timestep_type: Euler's model-call timesteps as the spaced integers (discrete) or 0.25·log σ
    /// (continuous, EDM).</summary>
    public TimestepType TimestepType { get; init; } = TimestepType.Discrete;
    /// <summary>PNDM: PLMS only (true, what Stable Diffusion uses) or 4 Runge–Kutta warm-up steps first.</summary>
    public bool SkipPrkSteps { get; init; }
    /// <summary>interpolation_type: Euler's σ(t) between training timesteps, linear in t or log-linear.</summary>
    public InterpolationType InterpolationType { get; init; } = InterpolationType.Linear;
    /// <summary>Euler with Karras sigmas: the σ range; null: the training schedule's.</summary>
    public double? SigmaMin { get; init; }
    /// <summary>Euler with Karras sigmas: the largest σ of the schedule; null: the training schedule's.</summary>
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

    /// <summary>A hash over the main scalar keys, consistent with <see cref="Equals(SchedulerConfig?)"/>.</summary>
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

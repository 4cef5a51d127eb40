// What a DDPM training run of diffusers' UNet2DModel fixes besides the TrainConfig (diffusers 0.27.2's
// examples/unconditional_image_generation/train_unconditional.py, whose defaults these are): the noise schedule
// (a DDPMScheduler config: beta_schedule, num_train_timesteps, prediction_type, …), the learning-rate schedule
// (diffusers' get_scheduler names), AdamW's betas and ε, the EMA warm-up (EMAModel's inv_gamma and power), random
// horizontal flips. Saved in trainer.json, so a resume trains exactly as the run began.
using System.Globalization;
using System.Text.Json.Nodes;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Training;

/// <summary>diffusers' get_scheduler names (optimization.py) that DdpmTrainer follows.</summary>
public enum LrSchedule
{
    /// <summary>"cosine": linear warm-up, then a half cosine from the peak rate down to 0 at the last step.</summary>
    Cosine,
    /// <summary>"linear": linear warm-up, then a linear decay to 0 at the last step.</summary>
    Linear,
    /// <summary>"constant": the peak rate throughout, no warm-up.</summary>
    Constant,
    /// <summary>"constant_with_warmup": linear warm-up, then the peak rate.</summary>
    ConstantWithWarmup,
}

/// <summary>What a DDPM run of diffusers' UNet2DModel fixes besides the <see cref="TrainConfig"/>, with the defaults of
/// diffusers' train_unconditional.py: the noise schedule, the learning-rate schedule, AdamW's betas and ε, the EMA
/// warm-up and random flips. Saved in trainer.json so a resume trains as the run began.</summary>
public sealed record DdpmObjective
{
    /// <summary>The training noise schedule: a DDPMScheduler config (its prediction_type is what the UNet learns).</summary>
    public SchedulerConfig Scheduler { get; init; } = SchedulerConfig.DefaultsFor("DDPMScheduler");
    /// <summary>lr_scheduler: how the learning rate evolves over the run (default cosine).</summary>
    public LrSchedule LrSchedule { get; init; } = LrSchedule.Cosine;
    /// <summary>adam_beta1: AdamW's β₁ (train_unconditional.py: 0.95).</summary>
    public double AdamBeta1 { get; init; } = 0.95;
    /// <summary>adam_beta2: AdamW's β₂ (0.999).</summary>
    public double AdamBeta2 { get; init; } = 0.999;
    /// <summary>adam_epsilon: AdamW's ε (1e-8).</summary>
    public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>ema_inv_gamma: EMAModel's warm-up inverse gamma (1.0).</summary>
    public double EmaInvGamma { get; init; } = 1.0;
    /// <summary>ema_power: EMAModel's warm-up power (0.75).</summary>
    public double EmaPower { get; init; } = 0.75;
    /// <summary>random_flip: mirror each training image left-right with probability ½.</summary>
    public bool RandomFlip { get; init; }

    /// <summary>The lr_scheduler names, in the order of <see cref="LrSchedule"/>'s members.</summary>
    public static readonly string[] LrScheduleNames = ["cosine", "linear", "constant", "constant_with_warmup"];

    /// <summary>The schedule of an lr_scheduler name (exact match); throws <see cref="ArgumentException"/> listing the
    /// valid names.</summary>
    public static LrSchedule ParseLrSchedule(string name) => Array.IndexOf(LrScheduleNames, name) switch
    {
        0 => LrSchedule.Cosine, 1 => LrSchedule.Linear, 2 => LrSchedule.Constant, 3 => LrSchedule.ConstantWithWarmup,
        _ => throw new ArgumentException($"lr_scheduler must be one of {string.Join(", ", LrScheduleNames)}, got \"{name}\""),
    };

    /// <summary>Throws <see cref="ArgumentException"/> unless the noise schedule is a valid DDPMScheduler config, the
    /// betas lie in [0, 1), ε is finite and non-negative, and the EMA's inv_gamma and power are positive.</summary>
    public void Validate()
    {
        if (Scheduler.ClassName != "DDPMScheduler") throw new ArgumentException($"the training noise schedule must be a DDPMScheduler config, got {Scheduler.ClassName}");
        Scheduler.Validate("training scheduler config");
        if (!(AdamBeta1 >= 0 && AdamBeta1 < 1) || !(AdamBeta2 >= 0 && AdamBeta2 < 1)) throw new ArgumentException($"adam betas must lie in [0, 1), got {AdamBeta1}, {AdamBeta2}");
        if (!(AdamEpsilon >= 0) || double.IsInfinity(AdamEpsilon)) throw new ArgumentException($"adam_epsilon must be a finite number ≥ 0, got {AdamEpsilon}");
        if (!(EmaInvGamma > 0) || double.IsInfinity(EmaInvGamma)) throw new ArgumentException($"ema_inv_gamma must be positive, got {EmaInvGamma}");
        if (!(EmaPower > 0) || double.IsInfinity(EmaPower)) throw new ArgumentException($"ema_power must be positive, got {EmaPower}");
    }

    /// <summary>The learning-rate factor of diffusers' LambdaLR schedules at optimizer step <paramref name="step"/>
    /// (0-based; PyTorch's LambdaLR gives the first step lambda(0), which is 0 during a warm-up).</summary>
    public double LrFactor(long step, int warmup, long total)
    {
        if (LrSchedule == LrSchedule.Constant) return 1;
        if (step < warmup) return step / (double)Math.Max(1, warmup);
        return LrSchedule switch
        {
            LrSchedule.ConstantWithWarmup => 1,
            LrSchedule.Linear => Math.Max(0.0, (total - step) / (double)Math.Max(1, total - warmup)),
            _ => Math.Max(0.0, 0.5 * (1 + Math.Cos(Math.PI * 0.5 * 2 * ((step - warmup) / (double)Math.Max(1, total - warmup))))),
        };
    }

    /// <summary>EMAModel.get_decay with use_ema_warmup: at its k-th update (k ≥ 1), step = k − 1; 0 at step 0, else
    /// min(max_decay, 1 − (1 + step/inv_gamma)^−power).</summary>
    public double EmaDecay(long update, double maxDecay)
    {
        long step = update - 1;
        if (step <= 0) return 0;
        return Math.Max(0, Math.Min(maxDecay, 1 - Math.Pow(1 + step / EmaInvGamma, -EmaPower)));
    }

    /// <summary>The objective as trainer.json stores it (the scheduler config as JSON text).</summary>
    public JsonObject ToJson() => new()
    {
        ["scheduler_config"] = Scheduler.ToJson(),
        ["lr_scheduler"] = LrScheduleNames[(int)LrSchedule],
        ["adam_beta1"] = AdamBeta1, ["adam_beta2"] = AdamBeta2, ["adam_epsilon"] = AdamEpsilon,
        ["ema_inv_gamma"] = EmaInvGamma, ["ema_power"] = EmaPower, ["random_flip"] = RandomFlip,
    };

    /// <summary>The objective from trainer.json; throws <see cref="InvalidDataException"/> starting with
    /// <paramref name="source"/> when a key is missing or has the wrong type.</summary>
    public static DdpmObjective FromJson(JsonObject o, string source)
    {
        try
        {
            return new DdpmObjective
            {
                Scheduler = SchedulerConfig.FromJson(o["scheduler_config"]!.GetValue<string>(), $"{source}: scheduler_config"),
                LrSchedule = ParseLrSchedule(o["lr_scheduler"]!.GetValue<string>()),
                AdamBeta1 = o["adam_beta1"]!.GetValue<double>(), AdamBeta2 = o["adam_beta2"]!.GetValue<double>(),
                AdamEpsilon = o["adam_epsilon"]!.GetValue<double>(),
                EmaInvGamma = o["ema_inv_gamma"]!.GetValue<double>(), EmaPower = o["ema_power"]!.GetValue<double>(),
                RandomFlip = o["random_flip"]!.GetValue<bool>(),
            };
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"{source}: malformed DDPM objective ({e.Message})");
        }
    }

    internal static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

// The vocabulary shared by GaussianDiffusion and its helpers: what the model predicts, how its variance is chosen,
// which loss trains it, the model delegate, where noise comes from, and the records the diffusion returns.
// Reference: openai/improved-diffusion, improved_diffusion/gaussian_diffusion.py (ModelMeanType, ModelVarType,
// LossType; the dicts returned by p_mean_variance, p_sample, training_losses and calc_bpd_loop).
// Deviation: the reference passes class labels etc. as model_kwargs; here the caller captures them in the
// DiffusionModel closure. Enums are append-only (their names are saved in configs).
namespace DiffuSharp.Diffusion;

/// <summary>
/// The denoising network as the diffusion sees it: x: (B, C, H, W) at timesteps (B) (float32: the timestep index,
/// or t·1000/T when timesteps are rescaled) → (B, C, H, W), or (B, 2C, H, W) when the variance is learned.
/// </summary>
public delegate Tensor DiffusionModel(Tensor x, Tensor timesteps);

/// <summary>What the model's output (its first C channels) predicts.</summary>
public enum ModelMeanType
{
    /// <summary>x_{t−1}, the posterior mean itself.</summary>
    PreviousX,
    /// <summary>x_0.</summary>
    StartX,
    /// <summary>ε, the noise added by q_sample (DDPM's parameterisation).</summary>
    Epsilon,
    /// <summary>v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans &amp; Ho 2022, "Progressive Distillation", §4; diffusers' v_prediction).</summary>
    Velocity,
}

/// <summary>The variance of p(x_{t−1} | x_t).</summary>
public enum ModelVarType
{
    /// <summary>The model outputs log σ² in channels C..2C.</summary>
    Learned,
    /// <summary>σ² = β̃_t, the posterior variance (DDPM's lower bound on the variance).</summary>
    FixedSmall,
    /// <summary>σ² = β_t (with β̃_1 at t = 0 for a better decoder likelihood).</summary>
    FixedLarge,
    /// <summary>The model outputs v ∈ [−1, 1]; log σ² = (v+1)/2 · log β_t + (1 − (v+1)/2) · log β̃_t (improved DDPM eq. 15).</summary>
    LearnedRange,
}

/// <summary>The training objective.</summary>
public enum LossType
{
    /// <summary>MSE on the mean prediction (plus the VB term when the variance is learned).</summary>
    Mse,
    /// <summary>MSE, with the VB term of a learned variance scaled by T/1000: T·L_t estimates L_vlb, so this is
    /// improved DDPM's L_hybrid = L_simple + λ·L_vlb with λ = 0.001 (§3.1).</summary>
    RescaledMse,
    /// <summary>The variational bound term L_t alone.</summary>
    Kl,
    /// <summary>The VB term times T, an unbiased estimate of the full bound.</summary>
    RescaledKl,
}

/// <summary>
/// Where the Gaussian noise of a step comes from: a fixed tensor (to reproduce a reference run) or a seeded
/// <see cref="Rng"/>. Both convert implicitly, so call sites read <c>PSample(model, x, t, rng)</c> or
/// <c>QSample(x0, t, noise)</c>. The default value has neither and is refused wherever noise is needed.
/// </summary>
public readonly struct NoiseSource
{
    readonly Tensor? _tensor;
    readonly Rng? _rng;

    NoiseSource(Tensor? tensor, Rng? rng) { _tensor = tensor; _rng = rng; }

    /// <summary>Noise taken from a fixed tensor (its shape is checked where it is used); null gives the refused
    /// default.</summary>
    public static implicit operator NoiseSource(Tensor? noise) => new(noise, null);
    /// <summary>Noise drawn from <paramref name="rng"/>; null gives the refused default.</summary>
    public static implicit operator NoiseSource(Rng? rng) => new(null, rng);

    /// <summary>True for the default value (neither a tensor nor an Rng), which is refused wherever noise is
    /// needed.</summary>
    public bool IsNone => _tensor is null && _rng is null;

    /// <summary>Noise shaped like <paramref name="like"/>: the fixed tensor (shape checked) or a fresh draw.</summary>
    internal Tensor Draw(Tensor like, string where)
    {
        if (_tensor is not null)
        {
            if (!ShapeUtil.Equal(_tensor.ShapeSpan, like.ShapeSpan))
                throw new ArgumentException($"{where}: noise has shape {ShapeUtil.Format(_tensor.ShapeSpan)}, expected {ShapeUtil.Format(like.ShapeSpan)}");
            return _tensor;
        }
        if (_rng is not null) return Tensor.RandN(like.Shape, _rng);
        throw new ArgumentException($"{where} needs noise: pass a noise Tensor or an Rng (all randomness is explicit)");
    }
}

/// <summary>
/// A Gaussian over x. Mean: (B, C, H, W). Variance and LogVariance broadcast against the mean: (B, 1, 1, 1) when
/// they come from a schedule table, (B, C, H, W) when the model outputs them.
/// </summary>
public sealed record GaussianParams(Tensor Mean, Tensor Variance, Tensor LogVariance);

/// <summary>p(x_{t−1} | x_t) and the model's prediction of x_0 (see <see cref="GaussianParams"/> for shapes).</summary>
public sealed record PMeanVarianceResult(Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor PredXStart);

/// <summary>One reverse step: Sample is x_{t−1} (or x_{t+1} for a DDIM reverse step), PredXStart the model's x_0.</summary>
public sealed record SampleOutput(Tensor Sample, Tensor PredXStart);

/// <summary>One step of a sampling loop: the step ran at timestep index <paramref name="Timestep"/> on x_t and
/// produced <paramref name="Sample"/> = x_{t−1} (x_{t+1} in DDIM inversion) and <paramref name="PredXStart"/>.
/// The loops reuse the memory of a step's tensors once the step after it has been computed (the last step's stay
/// valid): Clone() or ToArray() a step to keep it longer; a released tensor throws ObjectDisposedException.</summary>
public sealed record SampleStep(int Timestep, Tensor Sample, Tensor PredXStart);

/// <summary>Per-sample (B) training losses. Mse and Vb are null where the loss type has no such term.</summary>
public sealed record TrainingLossTerms(Tensor Loss, Tensor? Mse, Tensor? Vb);

/// <summary>
/// The full variational bound in bits per dimension. TotalBpd, PriorBpd: (B). Vb, XStartMse, Mse: (B, T), with
/// column j holding timestep T − 1 − j (the reference appends from t = T − 1 down to 0).
/// </summary>
public sealed record BpdResult(Tensor TotalBpd, Tensor PriorBpd, Tensor Vb, Tensor XStartMse, Tensor Mse);

// What DPM-Solver (multistep and singlestep), DEIS and UniPC share: they integrate the diffusion ODE in
// λ = log(α/σ) (half the log-SNR) with the linear part solved exactly (exponential integrators), over a table of
// noise levels σ_i = sqrt((1 − ᾱ)/ᾱ) at the inference timesteps, and keep the converted model outputs of earlier
// steps. Reference: diffusers 0.27.2 src/diffusers/schedulers/scheduling_dpmsolver_multistep.py (set_timesteps,
// _sigma_to_alpha_sigma_t, index_for_timestep, _init_step_index, add_noise, convert_model_output) and the
// identical "Copied from" methods of scheduling_dpmsolver_singlestep.py, scheduling_deis_multistep.py and
// scheduling_unipc_multistep.py.
// Precision: the σ table holds float32 values, as diffusers stores it (np.float32); α, σ, λ and every coefficient
// derived from them are double here (diffusers: float32 torch scalars), tensors float32.
// Pixel-space models: these classes have no clip_sample (diffusers reads none); thresholding with sample_max_value 1
// is its exact equivalent (s = clamp(quantile, 1, 1) = 1: x0 clipped to [−1, 1]). A model trained with
// improved-diffusion's clip_denoised needs it: on a cosine schedule the first step starts at α ≈ 5e-5, and
// x0 = (x − σ ε)/α turns the model's ε error into x0 errors of hundreds.
// Deviation: a model with a learned variance gives its ε in the first half of its channels; diffusers slices
// model_output[:, :3] (right only for 3-channel images) where variance_type says so, here the first C channels of
// any 2C-channel output are taken, for every class (improved-diffusion's learned-sigma models).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>
/// The base of the exponential-integrator solvers (DPM-Solver, DEIS, UniPC): the σ table of the inference steps,
/// the step counter, α/σ/λ at a step, model-output conversion and the forward process at a step's σ.
/// </summary>
public abstract class ExponentialIntegratorScheduler : Scheduler
{
    readonly double[] _trainSigmas;       // σ_t = sqrt((1 − ᾱ_t)/ᾱ_t), t = 0..T−1, float32 values
    double[] _sigmas = [];                // σ at each inference step, then the final σ (one longer than Timesteps)

    /// <summary>Builds the β, ᾱ and training σ tables of <paramref name="config"/>.</summary>
    /// <param name="floorZeroSnr">With rescale_betas_zero_snr, set ᾱ_{T−1} to 2⁻²⁴ instead of 0 so that its σ is
    /// finite (DPMSolverMultistep does; the other classes do not read the key).</param>
    protected ExponentialIntegratorScheduler(SchedulerConfig config, bool floorZeroSnr = false) : base(config)
    {
        if (floorZeroSnr && config.RescaleBetasZeroSnr)
            AlphasCumprod[^1] = Math.Pow(2, -24);      // the smallest positive float16 subnormal, as diffusers
        _trainSigmas = ScheduleMath.TrainingSigmas(AlphasCumprod);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<double>? Sigmas => _sigmas;

    /// <summary>σ_t = sqrt((1 − ᾱ_t)/ᾱ_t) at every training timestep (float32 values).</summary>
    protected ReadOnlySpan<double> TrainSigmas => _trainSigmas;

    /// <summary>Installs the σ table (n + 1 entries), rounded to float32 as diffusers stores it.</summary>
    protected void SetSigmas(double[] sigmas)
    {
        _sigmas = new double[sigmas.Length];
        for (int i = 0; i < sigmas.Length; i++) _sigmas[i] = (float)sigmas[i];
    }

    /// <summary>
    /// α_i = 1/sqrt(σ_i² + 1), σ'_i = σ_i·α_i (the variance-preserving coefficients of x_t = α x0 + σ' ε) and
    /// λ_i = log α_i − log σ'_i at entry <paramref name="i"/> of the σ table (λ = +∞ where σ = 0).
    /// </summary>
    protected (double Alpha, double Sigma, double Lambda) At(int i)
    {
        double s = _sigmas[i];
        double alpha = 1 / Math.Sqrt(s * s + 1);
        double sigma = s * alpha;
        return (alpha, sigma, Math.Log(alpha) - Math.Log(sigma));
    }

    /// <summary>
    /// How many training timesteps at the low-noise end have λ(t) below lambda_min_clipped (diffusers:
    /// searchsorted(flip(λ), lambda_min_clipped), λ in float32); 0 without clipping.
    /// </summary>
    protected int ClippedIndex()
    {
        if (double.IsNegativeInfinity(Config.LambdaMinClipped)) return 0;
        int count = 0;
        for (int t = AlphasCumprod.Length - 1; t >= 0; t--)          // flip(λ) is ascending: λ falls with t
        {
            float ac = (float)AlphasCumprod[t];
            float lambda = MathF.Log(MathF.Sqrt(ac)) - MathF.Log(MathF.Sqrt(1f - ac));
            if (lambda < Config.LambdaMinClipped) count++; else break;
        }
        return count;
    }

    /// <summary>
    /// The integer inference timesteps of DPM-Solver / DEIS / UniPC, descending, below <paramref name="lastTimestep"/>:
    /// "linspace" round(linspace(0, last − 1, n + 1)) without its 0; "leading" k·(last div (n + 1)) for k = n..1, plus
    /// steps_offset; "trailing" round(arange(last, 0, −T/n)) − 1 (numpy rounds half to even, as Math.Round).
    /// </summary>
    protected double[] SpacedTimesteps(int n, int lastTimestep, TimestepSpacing spacing)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
            {
                var l = ScheduleMath.Linspace(0, lastTimestep - 1, n + 1);
                var t = new double[n];
                for (int i = 0; i < n; i++) t[i] = Math.Round(l[n - i]);
                return t;
            }
            case TimestepSpacing.Leading:
            {
                int ratio = lastTimestep / (n + 1);
                var t = new double[n];
                for (int i = 0; i < n; i++) t[i] = (n - i) * ratio + Config.StepsOffset;
                return t;
            }
            default:
            {
                double ratio = Config.NumTrainTimesteps / (double)n;
                int count = (int)Math.Ceiling(lastTimestep / ratio);     // numpy arange's length
                var t = new double[count];
                for (int i = 0; i < count; i++) t[i] = Math.Round(lastTimestep - i * ratio) - 1;
                return t;
            }
        }
    }

    /// <summary>Karras et al. (2022) σ for n steps between the training σ range, and the timesteps they map to
    /// (diffusers' _convert_to_karras + rounded _sigma_to_t).</summary>
    protected (double[] Sigmas, double[] Timesteps) KarrasSchedule(int n)
    {
        var sigmas = ScheduleMath.KarrasSigmas(_trainSigmas[0], _trainSigmas[^1], n);
        return (sigmas, TimestepsOf(sigmas));
    }

    /// <summary>The rounded fractional training timesteps whose σ interpolates to <paramref name="sigmas"/>.</summary>
    protected double[] TimestepsOf(double[] sigmas)
    {
        var logSigmas = ScheduleMath.LogFloat32(_trainSigmas);
        var t = new double[sigmas.Length];
        for (int i = 0; i < t.Length; i++) t[i] = Math.Round(ScheduleMath.SigmaToT(sigmas[i], logSigmas));
        return t;
    }

    /// <summary>
    /// The schedule of DEIS and UniPC (their identical set_timesteps): the spaced timesteps with σ from the training
    /// table and a final σ_min, or with Karras sigmas the timesteps they map to and the last σ repeated. Installs the
    /// σ table and returns the timesteps.
    /// </summary>
    protected double[] SpacedScheduleEndingAtSigmaMin(int n)
    {
        if (Config.UseKarrasSigmas)
        {
            var (karras, t) = KarrasSchedule(n);
            SetSigmas([.. karras, karras[^1]]);
            return t;
        }
        var timesteps = SpacedTimesteps(n, Config.NumTrainTimesteps, Config.TimestepSpacing);
        SetSigmas([.. SigmasAt(timesteps), TrainSigmas[0]]);
        return timesteps;
    }

    /// <summary>σ at integer training timesteps (np.interp on the integer grid is the table itself).</summary>
    protected double[] SigmasAt(double[] timesteps)
    {
        var s = new double[timesteps.Length];
        for (int i = 0; i < s.Length; i++) s[i] = ScheduleMath.InterpIndex(timesteps[i], _trainSigmas);
        return s;
    }

    /// <summary>
    /// The step index of <paramref name="timestep"/> (diffusers' index_for_timestep): its position in
    /// <see cref="Scheduler.Timesteps"/>; the second one if it occurs twice (so an img2img start does not skip a σ);
    /// the last step if it does not occur.
    /// </summary>
    protected int IndexForTimestep(double timestep)
    {
        int first = -1;
        for (int i = 0; i < Timesteps.Count; i++)
        {
            if (Timesteps[i] != timestep) continue;
            if (first >= 0) return i;
            first = i;
        }
        return first >= 0 ? first : Timesteps.Count - 1;
    }

    /// <summary>The index of the step about to run: the counter, or on the first step the begin index or the
    /// position of <paramref name="timestep"/> (diffusers' _init_step_index).</summary>
    protected int CurrentStepIndex(double timestep)
    {
        RequireTimesteps();
        StepIndex ??= BeginIndex ?? IndexForTimestep(timestep);
        if (StepIndex >= Timesteps.Count)
            throw new InvalidOperationException($"{Config.ClassName}: all {Timesteps.Count} steps have run; call SetTimesteps to start again");
        return StepIndex.Value;
    }

    /// <summary>The mean half of a learned-variance output (B, 2C, …) → (B, C, …): a model with twice the sample's
    /// channels predicts (ε, variance) and these solvers use only ε (diffusers: variance_type learned / learned_range,
    /// read by DPM-Solver; DEIS and UniPC take it the same way). Other outputs unchanged; then the shapes are checked.</summary>
    protected Tensor MeanPart(Tensor modelOutput, Tensor sample)
    {
        if (modelOutput.Rank >= 2 && sample.Rank >= 2 && modelOutput.Dim(1) == 2 * sample.Dim(1))
            modelOutput = modelOutput.Slice(1, 0, sample.Dim(1));
        CheckShapes(modelOutput, sample);
        return modelOutput;
    }

    /// <summary>The data prediction x0 at step <paramref name="i"/> from the model output, thresholded when the config
    /// asks (DPM-Solver++ eq. 3 turns ε into x0 = (x_t − σ ε)/α).</summary>
    protected Tensor DataPrediction(Tensor modelOutput, Tensor sample, int i)
    {
        var (alpha, sigma, _) = At(i);
        var x0 = ScheduleMath.PredictX0(Config.PredictionType, modelOutput, sample, alpha, sigma);
        return Config.Thresholding ? ScheduleMath.DynamicThreshold(x0, Config.DynamicThresholdingRatio, Config.SampleMaxValue) : x0;
    }

    /// <summary>The noise prediction ε at step <paramref name="i"/> from the model output (no thresholding).</summary>
    protected Tensor NoisePrediction(Tensor modelOutput, Tensor sample, int i)
    {
        var (alpha, sigma, _) = At(i);
        return ScheduleMath.PredictEpsilon(Config.PredictionType, modelOutput, sample, alpha, sigma);
    }

    /// <summary>
    /// The forward process at the σ of a step: α_i·x0 + σ'_i·noise, where step i is the position of each timestep
    /// (or, once an img2img run has a begin index, the current step). Before <see cref="Scheduler.SetTimesteps"/>
    /// (training use) the σ of each training timestep, as diffusers' initial state holds all T of them.
    /// original, noise: (B, C, H, W).
    /// </summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, IReadOnlyList<double> timesteps)
    {
        CheckBatch(original, noise, timesteps);
        var a = new double[timesteps.Count];
        var s = new double[timesteps.Count];
        for (int b = 0; b < a.Length; b++)
        {
            double sigmaB = NumInferenceSteps == 0 ? _trainSigmas[TrainIndex(timesteps[b])]
                : _sigmas[BeginIndex is null ? IndexForTimestep(timesteps[b]) : StepIndex ?? BeginIndex.Value];
            // float32 as diffusers: α = 1/sqrt(σ² + 1) and σ' = σ·α on float32 tensors
            float sig = (float)sigmaB;
            float alpha = 1f / MathF.Sqrt(sig * sig + 1f);
            a[b] = alpha;
            s[b] = sig * alpha;
        }
        return ScheduleMath.PerSample(a, original.Rank) * original + ScheduleMath.PerSample(s, original.Rank) * noise;
    }
}

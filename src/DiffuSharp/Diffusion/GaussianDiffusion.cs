// The Gaussian diffusion process: its float64 tables, the forward process q, the posterior q(x_{t−1} | x_t, x_0)
// and the model's reverse step p(x_{t−1} | x_t). Sampling, losses and likelihoods are in the partial files
// GaussianDiffusion.Sampling.cs, .Losses.cs and .Likelihood.cs.
// Reference: openai/improved-diffusion, improved_diffusion/gaussian_diffusion.py, class GaussianDiffusion
// (__init__, q_mean_variance, q_sample, q_posterior_mean_variance, p_mean_variance, _predict_*,
// _scale_timesteps, _extract_into_tensor). Papers: Ho et al. 2020 "Denoising Diffusion Probabilistic Models"
// (DDPM), Nichol & Dhariwal 2021 "Improved Denoising Diffusion Probabilistic Models" (iDDPM).
// Numerics as the reference: tables are float64; a step reads table[t] per sample, rounds it to float32 and
// broadcasts it over (C, H, W) (_extract_into_tensor), and every tensor operation is float32, in the reference's
// order, so results agree with PyTorch bit for bit wherever the reference uses only + − × ÷ √.
// Deviations: timesteps are an int[] (one per batch element); model kwargs live in the DiffusionModel closure;
// variances from tables are returned as (B, 1, 1, 1) rather than expanded to x's shape (they broadcast the same).
namespace DiffuSharp.Diffusion;

/// <summary>improved-diffusion's GaussianDiffusion: the float64 tables of a beta schedule, the forward process q(x_t |
/// x_0), the posterior q(x_{t−1} | x_t, x_0), the model's reverse step p(x_{t−1} | x_t), sampling (DDPM, DDIM),
/// training losses and likelihoods. Tables are indexed by timestep 0..T−1.</summary>
public partial class GaussianDiffusion
{
    // Tables over timestep indices 0..T−1, float64 (iDDPM: "Use float64 for accuracy").
    readonly double[] _betas, _alphasCumprod, _alphasCumprodPrev, _alphasCumprodNext;
    readonly double[] _sqrtAlphasCumprod, _sqrtOneMinusAlphasCumprod, _logOneMinusAlphasCumprod, _oneMinusAlphasCumprod;
    readonly double[] _sqrtRecipAlphasCumprod, _sqrtRecipm1AlphasCumprod;
    readonly double[] _posteriorVariance, _posteriorLogVarianceClipped, _posteriorMeanCoef1, _posteriorMeanCoef2;
    readonly double[] _logBetas, _fixedLargeVariance, _fixedLargeLogVariance, _recipPosteriorMeanCoef1, _posteriorMeanCoefRatio;

    /// <summary>What the model predicts: ε, x_0 or the posterior mean x_{t−1} (improved-diffusion's
    /// model_mean_type).</summary>
    public ModelMeanType ModelMeanType { get; }
    /// <summary>How the reverse variance is chosen: learned, fixed small (β̃_t), fixed large (β_t) or learned range
    /// (improved-diffusion's model_var_type).</summary>
    public ModelVarType ModelVarType { get; }
    /// <summary>The training objective: MSE, rescaled MSE, or the variational bound KL (rescaled or not)
    /// (loss_type).</summary>
    public LossType LossType { get; }

    /// <summary>Pass t·1000/T to the model instead of t, so that timesteps always look like DDPM's 0..1000.</summary>
    public bool RescaleTimesteps { get; }

    /// <summary>T, the number of steps of this process.</summary>
    public int NumTimesteps { get; }

    /// <summary>β_t for every timestep index, float64.</summary>
    public IReadOnlyList<double> Betas => _betas;
    /// <summary>ᾱ_t = ∏_{s≤t} (1 − β_s).</summary>
    public IReadOnlyList<double> AlphasCumprod => _alphasCumprod;
    /// <summary>ᾱ_{t−1}, with 1 at t = 0.</summary>
    public IReadOnlyList<double> AlphasCumprodPrev => _alphasCumprodPrev;
    /// <summary>ᾱ_{t+1}, with 0 at t = T − 1.</summary>
    public IReadOnlyList<double> AlphasCumprodNext => _alphasCumprodNext;
    /// <summary>√ᾱ_t, the signal scale of q(x_t | x_0).</summary>
    public IReadOnlyList<double> SqrtAlphasCumprod => _sqrtAlphasCumprod;
    /// <summary>√(1 − ᾱ_t), the noise scale of q(x_t | x_0).</summary>
    public IReadOnlyList<double> SqrtOneMinusAlphasCumprod => _sqrtOneMinusAlphasCumprod;
    /// <summary>log(1 − ᾱ_t).</summary>
    public IReadOnlyList<double> LogOneMinusAlphasCumprod => _logOneMinusAlphasCumprod;
    /// <summary>√(1/ᾱ_t), used to recover x_0 from ε.</summary>
    public IReadOnlyList<double> SqrtRecipAlphasCumprod => _sqrtRecipAlphasCumprod;
    /// <summary>√(1/ᾱ_t − 1), used to recover x_0 from ε.</summary>
    public IReadOnlyList<double> SqrtRecipm1AlphasCumprod => _sqrtRecipm1AlphasCumprod;
    /// <summary>Posterior variance β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) of q(x_{t−1} | x_t, x_0); 0 at t = 0.</summary>
    public IReadOnlyList<double> PosteriorVariance => _posteriorVariance;
    /// <summary>log β̃_t with the t = 0 entry replaced by the t = 1 one (β̃_0 is 0), as improved-diffusion's
    /// posterior_log_variance_clipped.</summary>
    public IReadOnlyList<double> PosteriorLogVarianceClipped => _posteriorLogVarianceClipped;
    /// <summary>Coefficient of x_0 in the posterior mean: β_t √ᾱ_{t−1} / (1 − ᾱ_t).</summary>
    public IReadOnlyList<double> PosteriorMeanCoef1 => _posteriorMeanCoef1;
    /// <summary>Coefficient of x_t in the posterior mean: (1 − ᾱ_{t−1}) √(1 − β_t) / (1 − ᾱ_t).</summary>
    public IReadOnlyList<double> PosteriorMeanCoef2 => _posteriorMeanCoef2;

    /// <param name="betas">β for each timestep index 0..T−1, each in (0, 1].</param>
    public GaussianDiffusion(double[] betas, ModelMeanType modelMeanType, ModelVarType modelVarType, LossType lossType, bool rescaleTimesteps = false)
    {
        ArgumentNullException.ThrowIfNull(betas);
        if (betas.Length == 0) throw new ArgumentException("GaussianDiffusion needs at least one beta", nameof(betas));
        for (int i = 0; i < betas.Length; i++)
            if (!(betas[i] > 0 && betas[i] <= 1))
                throw new ArgumentException($"betas must lie in (0, 1]; betas[{i}] = {betas[i]}", nameof(betas));
        if (!Enum.IsDefined(modelMeanType)) throw new ArgumentOutOfRangeException(nameof(modelMeanType), $"unknown model mean type {modelMeanType}");
        if (!Enum.IsDefined(modelVarType)) throw new ArgumentOutOfRangeException(nameof(modelVarType), $"unknown model variance type {modelVarType}");
        if (!Enum.IsDefined(lossType)) throw new ArgumentOutOfRangeException(nameof(lossType), $"unknown loss type {lossType}");

        ModelMeanType = modelMeanType;
        ModelVarType = modelVarType;
        LossType = lossType;
        RescaleTimesteps = rescaleTimesteps;
        int T = NumTimesteps = betas.Length;
        _betas = (double[])betas.Clone();

        // 1. α_t = 1 − β_t, ᾱ_t = Π_{s≤t} α_s (DDPM eq. 4; sequential product as numpy.cumprod),
        //    ᾱ_{t−1} with ᾱ_{−1} = 1, ᾱ_{t+1} with ᾱ_T = 0.
        var alphas = Map(_betas, b => 1.0 - b);
        _alphasCumprod = new double[T];
        double acc = 1.0;
        for (int i = 0; i < T; i++) _alphasCumprod[i] = acc *= alphas[i];
        _alphasCumprodPrev = new double[T];
        _alphasCumprodNext = new double[T];
        for (int i = 0; i < T; i++)
        {
            _alphasCumprodPrev[i] = i == 0 ? 1.0 : _alphasCumprod[i - 1];
            _alphasCumprodNext[i] = i == T - 1 ? 0.0 : _alphasCumprod[i + 1];
        }

        // 2. q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (DDPM eq. 4) and its inverse x_0 = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε.
        _sqrtAlphasCumprod = Map(_alphasCumprod, Math.Sqrt);
        _oneMinusAlphasCumprod = Map(_alphasCumprod, a => 1.0 - a);
        _sqrtOneMinusAlphasCumprod = Map(_alphasCumprod, a => Math.Sqrt(1.0 - a));
        _logOneMinusAlphasCumprod = Map(_alphasCumprod, a => Math.Log(1.0 - a));
        _sqrtRecipAlphasCumprod = Map(_alphasCumprod, a => Math.Sqrt(1.0 / a));
        _sqrtRecipm1AlphasCumprod = Map(_alphasCumprod, a => Math.Sqrt(1.0 / a - 1));

        // 3. Posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) (DDPM eqs. 6–7):
        //    β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t),
        //    μ̃_t = β_t √ᾱ_{t−1} / (1 − ᾱ_t) · x_0 + (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t) · x_t.
        //    β̃_0 = 0, so its log is clipped by repeating β̃_1 at t = 0.
        _posteriorVariance = new double[T];
        _posteriorMeanCoef1 = new double[T];
        _posteriorMeanCoef2 = new double[T];
        for (int i = 0; i < T; i++)
        {
            _posteriorVariance[i] = _betas[i] * (1.0 - _alphasCumprodPrev[i]) / (1.0 - _alphasCumprod[i]);
            _posteriorMeanCoef1[i] = _betas[i] * Math.Sqrt(_alphasCumprodPrev[i]) / (1.0 - _alphasCumprod[i]);
            _posteriorMeanCoef2[i] = (1.0 - _alphasCumprodPrev[i]) * Math.Sqrt(alphas[i]) / (1.0 - _alphasCumprod[i]);
        }
        double firstLogged = T > 1 ? _posteriorVariance[1] : _posteriorVariance[0];
        _posteriorLogVarianceClipped = new double[T];
        for (int i = 0; i < T; i++) _posteriorLogVarianceClipped[i] = Math.Log(i == 0 ? firstLogged : _posteriorVariance[i]);

        // 4. Tables for the model's variance and x_0 from x_{t−1}: log β (learned range), the fixed-large variance
        //    [β̃_1, β_1, …, β_{T−1}] (its first entry is β̃_1 for a better decoder likelihood), 1/coef1, coef2/coef1.
        _logBetas = Map(_betas, Math.Log);
        _fixedLargeVariance = new double[T];
        for (int i = 0; i < T; i++) _fixedLargeVariance[i] = i == 0 ? firstLogged : _betas[i];
        _fixedLargeLogVariance = Map(_fixedLargeVariance, Math.Log);
        _recipPosteriorMeanCoef1 = Map(_posteriorMeanCoef1, c => 1.0 / c);
        _posteriorMeanCoefRatio = new double[T];
        for (int i = 0; i < T; i++) _posteriorMeanCoefRatio[i] = _posteriorMeanCoef2[i] / _posteriorMeanCoef1[i];
    }

    static double[] Map(double[] a, Func<double, double> f)
    {
        var r = new double[a.Length];
        for (int i = 0; i < a.Length; i++) r[i] = f(a[i]);
        return r;
    }

    // ---- forward process --------------------------------------------------------------------------------------

    /// <summary>q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I). x0: (B, C, H, W), t: (B).</summary>
    public GaussianParams QMeanVariance(Tensor x0, int[] t)
    {
        CheckBatch(x0, t, nameof(QMeanVariance));
        var mean = Extract(_sqrtAlphasCumprod, t, x0.Rank) * x0;
        return new GaussianParams(mean, Extract(_oneMinusAlphasCumprod, t, x0.Rank), Extract(_logOneMinusAlphasCumprod, t, x0.Rank));
    }

    /// <summary>Diffuses x_0 by t + 1 steps: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (DDPM eq. 4). x0, noise: (B, C, H, W).</summary>
    public Tensor QSample(Tensor x0, int[] t, NoiseSource noise)
    {
        CheckBatch(x0, t, nameof(QSample));
        var eps = noise.Draw(x0, nameof(QSample));
        return Extract(_sqrtAlphasCumprod, t, x0.Rank) * x0 + Extract(_sqrtOneMinusAlphasCumprod, t, x0.Rank) * eps;
    }

    /// <summary>The posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) (DDPM eqs. 6–7); LogVariance is the clipped log β̃_t.</summary>
    public GaussianParams QPosteriorMeanVariance(Tensor x0, Tensor xt, int[] t)
    {
        if (!ShapeUtil.Equal(x0.ShapeSpan, xt.ShapeSpan))
            throw new ArgumentException($"QPosteriorMeanVariance: x0 {ShapeUtil.Format(x0.ShapeSpan)} and x_t {ShapeUtil.Format(xt.ShapeSpan)} differ in shape");
        CheckBatch(xt, t, nameof(QPosteriorMeanVariance));
        var mean = Extract(_posteriorMeanCoef1, t, xt.Rank) * x0 + Extract(_posteriorMeanCoef2, t, xt.Rank) * xt;
        return new GaussianParams(mean, Extract(_posteriorVariance, t, xt.Rank), Extract(_posteriorLogVarianceClipped, t, xt.Rank));
    }

    // ---- the reverse step -------------------------------------------------------------------------------------

    /// <summary>
    /// Runs the model on x_t and turns its output into p(x_{t−1} | x_t) and a prediction of x_0.
    /// x: (B, C, H, W); t: (B). The model returns (B, C, H, W), or (B, 2C, H, W) for learned variances.
    /// <paramref name="denoisedFn"/> maps the x_0 prediction before it is used, ahead of the clip to [−1, 1].
    /// </summary>
    public PMeanVarianceResult PMeanVariance(DiffusionModel model, Tensor x, int[] t, bool clipDenoised = true, Func<Tensor, Tensor>? denoisedFn = null)
    {
        CheckBatch(x, t, nameof(PMeanVariance));
        int C = x.Dim(1), rank = x.Rank;
        var output = CallModel(model, x, t);                                   // (B, C or 2C, H, W)

        // 1. Variance: learned (log σ² from the model), learned range (iDDPM eq. 15) or a fixed table.
        Tensor modelOutput, variance, logVariance;
        if (ModelVarType is ModelVarType.Learned or ModelVarType.LearnedRange)
        {
            var parts = output.Split([C, C], 1);                             // 2 × (B, C, H, W)
            modelOutput = parts[0];
            if (ModelVarType == ModelVarType.Learned)
                logVariance = parts[1];
            else
            {
                // log σ² = frac · log β_t + (1 − frac) · log β̃_t, frac = (v + 1)/2 maps v ∈ [−1, 1] to [0, 1].
                var minLog = Extract(_posteriorLogVarianceClipped, t, rank);
                var maxLog = Extract(_logBetas, t, rank);
                var frac = (parts[1] + 1.0) / 2.0;
                logVariance = frac * maxLog + (1.0 - frac) * minLog;
            }
            variance = logVariance.Exp();
        }
        else
        {
            modelOutput = output;
            (variance, logVariance) = ModelVarType == ModelVarType.FixedLarge
                ? (Extract(_fixedLargeVariance, t, rank), Extract(_fixedLargeLogVariance, t, rank))
                : (Extract(_posteriorVariance, t, rank), Extract(_posteriorLogVarianceClipped, t, rank));
        }

        // 2. x_0 and the mean: x_{t−1} predicted directly, or μ̃_t(x̂_0, x_t) from a predicted x_0 or ε.
        Tensor ProcessXStart(Tensor x0)
        {
            if (denoisedFn is not null) x0 = denoisedFn(x0);
            return clipDenoised ? x0.Clamp(-1, 1) : x0;
        }
        Tensor predXStart, mean;
        switch (ModelMeanType)
        {
            case ModelMeanType.PreviousX:
                predXStart = ProcessXStart(PredictXStartFromXPrev(x, t, modelOutput));
                mean = modelOutput;
                break;
            case ModelMeanType.StartX:
                predXStart = ProcessXStart(modelOutput);
                mean = QPosteriorMeanVariance(predXStart, x, t).Mean;
                break;
            case ModelMeanType.Velocity:
                predXStart = ProcessXStart(PredictXStartFromV(x, t, modelOutput));
                mean = QPosteriorMeanVariance(predXStart, x, t).Mean;
                break;
            default:
                predXStart = ProcessXStart(PredictXStartFromEps(x, t, modelOutput));
                mean = QPosteriorMeanVariance(predXStart, x, t).Mean;
                break;
        }
        return new PMeanVarianceResult(mean, variance, logVariance, predXStart);
    }

    /// <summary>x̂_0 = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε (DDPM eq. 4 solved for x_0).</summary>
    public Tensor PredictXStartFromEps(Tensor xt, int[] t, Tensor eps)
    {
        CheckSameShape(xt, eps, "PredictXStartFromEps", "eps");
        CheckBatch(xt, t, nameof(PredictXStartFromEps));
        return Extract(_sqrtRecipAlphasCumprod, t, xt.Rank) * xt - Extract(_sqrtRecipm1AlphasCumprod, t, xt.Rank) * eps;
    }

    /// <summary>x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v: with x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε and v = √ᾱ_t ε − √(1 − ᾱ_t) x_0
    /// the ε terms cancel and the x_0 terms sum to (ᾱ_t + 1 − ᾱ_t) x_0 (Salimans &amp; Ho 2022, §4).</summary>
    public Tensor PredictXStartFromV(Tensor xt, int[] t, Tensor v)
    {
        CheckSameShape(xt, v, "PredictXStartFromV", "v");
        CheckBatch(xt, t, nameof(PredictXStartFromV));
        return Extract(_sqrtAlphasCumprod, t, xt.Rank) * xt - Extract(_sqrtOneMinusAlphasCumprod, t, xt.Rank) * v;
    }

    /// <summary>The v-prediction target v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (diffusers' get_velocity). x0, eps: (B, C, H, W).</summary>
    public Tensor Velocity(Tensor x0, Tensor eps, int[] t)
    {
        CheckSameShape(x0, eps, "Velocity", "eps");
        CheckBatch(x0, t, nameof(Velocity));
        return Extract(_sqrtAlphasCumprod, t, x0.Rank) * eps - Extract(_sqrtOneMinusAlphasCumprod, t, x0.Rank) * x0;
    }

    /// <summary>x̂_0 = (x_{t−1} − coef2 · x_t) / coef1, the posterior mean (DDPM eq. 7) solved for x_0.</summary>
    public Tensor PredictXStartFromXPrev(Tensor xt, int[] t, Tensor xPrev)
    {
        CheckSameShape(xt, xPrev, "PredictXStartFromXPrev", "xPrev");
        CheckBatch(xt, t, nameof(PredictXStartFromXPrev));
        return Extract(_recipPosteriorMeanCoef1, t, xt.Rank) * xPrev - Extract(_posteriorMeanCoefRatio, t, xt.Rank) * xt;
    }

    /// <summary>ε̂ = (√(1/ᾱ_t) x_t − x̂_0) / √(1/ᾱ_t − 1), the inverse of <see cref="PredictXStartFromEps"/>.</summary>
    public Tensor PredictEpsFromXStart(Tensor xt, int[] t, Tensor predXStart)
    {
        CheckSameShape(xt, predXStart, "PredictEpsFromXStart", "predXStart");
        CheckBatch(xt, t, nameof(PredictEpsFromXStart));
        return (Extract(_sqrtRecipAlphasCumprod, t, xt.Rank) * xt - predXStart) / Extract(_sqrtRecipm1AlphasCumprod, t, xt.Rank);
    }

    // ---- the model call ---------------------------------------------------------------------------------------

    /// <summary>
    /// The float32 timesteps (B) the model receives for indices t: t itself, or t · (1000/T) when
    /// <see cref="RescaleTimesteps"/> (the factor is rounded to float32 first, as PyTorch does with a Python scalar).
    /// </summary>
    public virtual Tensor ModelTimesteps(int[] t)
    {
        var r = new float[t.Length];
        float scale = (float)(1000.0 / NumTimesteps);
        for (int i = 0; i < t.Length; i++) r[i] = RescaleTimesteps ? (float)t[i] * scale : t[i];
        return Tensor.Wrap(r, t.Length);
    }

    /// <summary>model(x, timesteps), with its output shape checked against the variance type.</summary>
    internal Tensor CallModel(DiffusionModel model, Tensor x, int[] t)
    {
        ArgumentNullException.ThrowIfNull(model);
        var output = model(x, ModelTimesteps(t)) ?? throw new InvalidOperationException("The diffusion model returned null");
        var expected = x.Shape;
        if (ModelVarType is ModelVarType.Learned or ModelVarType.LearnedRange) expected[1] *= 2;
        if (!ShapeUtil.Equal(output.ShapeSpan, expected))
            throw new ArgumentException($"The model returned {ShapeUtil.Format(output.ShapeSpan)} for x {ShapeUtil.Format(x.ShapeSpan)}; " +
                $"with {ModelVarType} variance it must return {ShapeUtil.Format(expected)}");
        return output;
    }

    // ---- helpers ----------------------------------------------------------------------------------------------

    /// <summary>table[t_b] rounded to float32, shaped (B, 1, …, 1) to broadcast against a tensor of the given rank
    /// (the reference's _extract_into_tensor: index the float64 array, then .float()).</summary>
    internal static Tensor Extract(double[] table, int[] t, int rank)
    {
        var v = new float[t.Length];
        for (int b = 0; b < t.Length; b++) v[b] = (float)table[t[b]];
        return PerSample(v, rank);
    }

    /// <summary>Per-sample float32 values shaped (B, 1, …, 1).</summary>
    internal static Tensor PerSample(float[] values, int rank)
    {
        var shape = new int[rank];
        Array.Fill(shape, 1);
        shape[0] = values.Length;
        return Tensor.Wrap(values, shape);
    }

    /// <summary>1 where t ≠ 0, else 0, shaped (B, 1, …, 1): no noise is added on the last step.</summary>
    internal static Tensor NonzeroMask(int[] t, int rank)
    {
        var v = new float[t.Length];
        for (int b = 0; b < t.Length; b++) v[b] = t[b] != 0 ? 1f : 0f;
        return PerSample(v, rank);
    }

    /// <summary>An int[] of n copies of t.</summary>
    internal static int[] Fill(int n, int t)
    {
        var r = new int[n];
        Array.Fill(r, t);
        return r;
    }

    internal void CheckBatch(Tensor x, int[] t, string op)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(t);
        if (x.Rank < 2) throw new ArgumentException($"{op}: x must be (B, C, …), got {ShapeUtil.Format(x.ShapeSpan)}");
        if (t.Length != x.Dim(0)) throw new ArgumentException($"{op}: {t.Length} timesteps for a batch of {x.Dim(0)} (x is {ShapeUtil.Format(x.ShapeSpan)}); give one per sample");
        foreach (int ti in t)
            if ((uint)ti >= (uint)NumTimesteps) throw new ArgumentOutOfRangeException(nameof(t), $"{op}: timestep {ti} is outside [0, {NumTimesteps})");
    }

    static void CheckSameShape(Tensor x, Tensor y, string op, string name)
    {
        if (!ShapeUtil.Equal(x.ShapeSpan, y.ShapeSpan))
            throw new ArgumentException($"{op}: {name} has shape {ShapeUtil.Format(y.ShapeSpan)}, x_t has {ShapeUtil.Format(x.ShapeSpan)}");
    }
}

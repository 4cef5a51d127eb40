// The schedule maths diffusers' schedulers share: betas for each beta_schedule, zero-terminal-SNR rescaling,
// timestep spacing, σ(t) tables, Karras sigmas, σ → t interpolation, dynamic thresholding and the conversion of a
// model output (ε, x0 or v) to x0. Reference: diffusers 0.27.2 src/diffusers/schedulers/scheduling_ddim.py
// (betas_for_alpha_bar, rescale_zero_terminal_snr, _threshold_sample, set_timesteps) and
// scheduling_euler_discrete.py (_sigma_to_t, _convert_to_karras, set_timesteps).
// Precision: scalar maths is double, except where diffusers holds a table in float32 torch tensors and the rounding
// shows beyond 1e-5: betas, alphas and ᾱ are float32 there (ᾱ ≈ 0.9999 at t = 0, so 1 − ᾱ carries a 6e-4
// relative float32 error that then feeds every σ), and σ(t) = sqrt((1 − ᾱ)/ᾱ) is computed in float32 too. Those
// tables are rounded to float32 exactly as torch rounds them (cumprod accumulates in double on the CPU, as torch's
// does) and then held in double.
namespace DiffuSharp.Schedulers;

/// <summary>Shared schedule maths of the diffusers schedulers (double, with diffusers' float32 roundings).</summary>
public static class ScheduleMath
{
    /// <summary>β_t for t = 0..T−1 as diffusers builds them (float32 values).</summary>
    public static double[] Betas(SchedulerConfig c)
    {
        int n = c.NumTrainTimesteps;
        var betas = new double[n];
        if (c.TrainedBetas is { } tb)
            for (int i = 0; i < n; i++) betas[i] = (float)tb[i];
        else if (c.BetaSchedule == BetaSchedule.Linear)
        {
            var l = Linspace(c.BetaStart, c.BetaEnd, n);
            for (int i = 0; i < n; i++) betas[i] = (float)l[i];
        }
        else if (c.BetaSchedule == BetaSchedule.ScaledLinear)
        {
            // torch.linspace(√β_start, √β_end, T, dtype=float32) ** 2: squared in float32
            var l = Linspace(Math.Sqrt(c.BetaStart), Math.Sqrt(c.BetaEnd), n);
            for (int i = 0; i < n; i++) { float r = (float)l[i]; betas[i] = r * r; }
        }
        else
        {
            // betas_for_alpha_bar, cosine: β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999) in double, stored float32
            static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
            for (int i = 0; i < n; i++)
                betas[i] = (float)Math.Min(1 - AlphaBar((i + 1) / (double)n) / AlphaBar(i / (double)n), 0.999);
        }
        return c.RescaleBetasZeroSnr ? RescaleZeroTerminalSnr(betas) : betas;
    }

    /// <summary>Lin et al. (2023) Algorithm 1: shift and scale √ᾱ so that √ᾱ_T = 0 and √ᾱ_0 is unchanged (float32,
    /// as diffusers' rescale_zero_terminal_snr).</summary>
    public static double[] RescaleZeroTerminalSnr(double[] betas)
    {
        var ac = AlphasCumprod(betas);
        int n = betas.Length;
        var sqrtAc = new float[n];
        for (int i = 0; i < n; i++) sqrtAc[i] = MathF.Sqrt((float)ac[i]);
        float s0 = sqrtAc[0], sT = sqrtAc[n - 1];
        float scale = s0 / (s0 - sT);
        var acBar = new float[n];
        for (int i = 0; i < n; i++) { float v = (sqrtAc[i] - sT) * scale; acBar[i] = v * v; }
        var r = new double[n];
        r[0] = 1f - acBar[0];
        for (int i = 1; i < n; i++) r[i] = 1f - acBar[i] / acBar[i - 1];
        return r;
    }

    /// <summary>ᾱ_t = Π_{s≤t} (1 − β_s): float32 alphas, product accumulated in double and rounded to float32 per
    /// entry (torch.cumprod on a float32 CPU tensor).</summary>
    public static double[] AlphasCumprod(double[] betas)
    {
        var ac = new double[betas.Length];
        double prod = 1;
        for (int i = 0; i < betas.Length; i++) { prod *= 1f - (float)betas[i]; ac[i] = (float)prod; }
        return ac;
    }

    /// <summary>σ_t = sqrt((1 − ᾱ_t)/ᾱ_t) in float32, the k-diffusion noise level of training timestep t.</summary>
    public static double[] TrainingSigmas(double[] alphasCumprod)
    {
        var s = new double[alphasCumprod.Length];
        for (int i = 0; i < s.Length; i++) { float a = (float)alphasCumprod[i]; s[i] = MathF.Sqrt((1f - a) / a); }
        return s;
    }

    /// <summary>numpy.linspace(start, stop, n) in double (the last point exactly stop).</summary>
    public static double[] Linspace(double start, double stop, int n)
    {
        var r = new double[n];
        if (n == 1) { r[0] = start; return r; }
        double step = (stop - start) / (n - 1);
        for (int i = 0; i < n; i++) r[i] = start + i * step;
        r[n - 1] = stop;
        return r;
    }

    /// <summary>
    /// The inference timesteps, descending, for DDPM / DDIM / PNDM (<paramref name="discrete"/>: "linspace" is rounded
    /// to integers) or for the σ-based schedulers (linspace kept fractional). "leading": 0, r, 2r, … (r = T div n)
    /// plus steps_offset; "trailing": T − 1, T − 1 − T/n, … (rounded half to even, as numpy).
    /// </summary>
    public static double[] SpacedTimesteps(SchedulerConfig c, int n, bool discrete)
    {
        int T = c.NumTrainTimesteps;
        if (n < 1 || n > T) throw new ArgumentException($"num_inference_steps must lie in 1..{T} (num_train_timesteps), got {n}");
        var t = new double[n];
        switch (c.TimestepSpacing)
        {
            case TimestepSpacing.Linspace:
                var l = Linspace(0, T - 1, n);
                for (int i = 0; i < n; i++) t[i] = discrete ? Math.Round(l[n - 1 - i]) : l[n - 1 - i];
                break;
            case TimestepSpacing.Leading:
                int ratio = T / n;
                for (int i = 0; i < n; i++) t[i] = (n - 1 - i) * ratio + c.StepsOffset;
                break;
            case TimestepSpacing.Trailing:
                double r = T / (double)n;
                // np.round(np.arange(T, 0, -r)) − 1: the arange has ceil(T / r) = n points
                for (int i = 0; i < n; i++) t[i] = Math.Round(T - i * r) - 1;
                break;
        }
        return t;
    }

    /// <summary>numpy.interp(x, [0, 1, …, n−1], fp): linear interpolation on the integer grid, clamped at the ends.</summary>
    public static double InterpIndex(double x, ReadOnlySpan<double> fp)
    {
        if (x <= 0) return fp[0];
        if (x >= fp.Length - 1) return fp[^1];
        int j = (int)Math.Floor(x);
        double slope = fp[j + 1] - fp[j];
        return slope * (x - j) + fp[j];
    }

    /// <summary>diffusers' _sigma_to_t: the fractional training timestep whose log σ interpolates to log σ
    /// (<paramref name="logSigmas"/> ascending, float32 values).</summary>
    public static double SigmaToT(double sigma, ReadOnlySpan<double> logSigmas)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        // low = the last index with log σ_i ≤ log σ (0 if none), at most n − 2
        int low = 0;
        for (int i = 0; i < logSigmas.Length; i++) if (logSigma - logSigmas[i] >= 0) low = i;
        low = Math.Min(low, logSigmas.Length - 2);
        double lo = logSigmas[low], hi = logSigmas[low + 1];
        double w = Math.Clamp((lo - logSigma) / (lo - hi), 0, 1);
        return (1 - w) * low + w * (low + 1);
    }

    /// <summary>Karras et al. (2022) eq. 5: σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7.</summary>
    public static double[] KarrasSigmas(double sigmaMin, double sigmaMax, int n)
    {
        const double rho = 7.0;
        var ramp = Linspace(0, 1, n);
        double minInvRho = Math.Pow(sigmaMin, 1 / rho), maxInvRho = Math.Pow(sigmaMax, 1 / rho);
        var s = new double[n];
        for (int i = 0; i < n; i++) s[i] = Math.Pow(maxInvRho + ramp[i] * (minInvRho - maxInvRho), rho);
        return s;
    }

    /// <summary>log of float32 σ values, in float32 (numpy's log of a float32 array).</summary>
    public static double[] LogFloat32(double[] sigmas)
    {
        var r = new double[sigmas.Length];
        for (int i = 0; i < r.Length; i++) r[i] = MathF.Log((float)sigmas[i]);
        return r;
    }

    /// <summary>
    /// Imagen's dynamic thresholding (Saharia et al. 2022, §2.3): per sample, s = the <paramref name="ratio"/>
    /// quantile of |x0| clamped to [1, <paramref name="maxValue"/>]; x0 ← clamp(x0, −s, s) / s. x0: (B, ...).
    /// </summary>
    public static Tensor DynamicThreshold(Tensor x0, double ratio, double maxValue)
    {
        var x = x0.Contiguous().ToArray();
        int b = x0.Dim(0), per = x.Length / b;
        var r = new float[x.Length];
        var abs = new float[per];
        for (int i = 0; i < b; i++)
        {
            var row = x.AsSpan(i * per, per);
            for (int j = 0; j < per; j++) abs[j] = MathF.Abs(row[j]);
            Array.Sort(abs);
            // torch.quantile, linear interpolation between the order statistics at ratio·(n − 1)
            double pos = ratio * (per - 1);
            int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, per - 1);
            double q = abs[lo] + (pos - lo) * (abs[hi] - abs[lo]);
            float s = (float)Math.Clamp(q, 1, maxValue);
            for (int j = 0; j < per; j++) r[i * per + j] = Math.Clamp(row[j], -s, s) / s;
        }
        return Tensor.FromArray(r, x0.Shape);
    }

    /// <summary>x0 from a variance-preserving model output at x_t = α x0 + σ ε (α = √ᾱ, σ = √(1 − ᾱ)):
    /// ε → (x_t − σ ε)/α; sample → itself; v → α x_t − σ v (Salimans &amp; Ho 2022, v = α ε − σ x0).</summary>
    public static Tensor PredictX0(PredictionType type, Tensor modelOutput, Tensor sample, double alpha, double sigma) => type switch
    {
        PredictionType.Epsilon => (sample - sigma * modelOutput) / alpha,
        PredictionType.Sample => modelOutput,
        _ => alpha * sample - sigma * modelOutput,
    };

    /// <summary>ε from a variance-preserving model output (see <see cref="PredictX0"/>).</summary>
    public static Tensor PredictEpsilon(PredictionType type, Tensor modelOutput, Tensor sample, double alpha, double sigma) => type switch
    {
        PredictionType.Epsilon => modelOutput,
        PredictionType.Sample => (sample - alpha * modelOutput) / sigma,
        _ => alpha * modelOutput + sigma * sample,
    };

    /// <summary>A (B, 1, …, 1) tensor of per-sample coefficients that broadcasts against a rank-<paramref name="rank"/> tensor.</summary>
    public static Tensor PerSample(double[] values, int rank)
    {
        var shape = new int[Math.Max(rank, 1)];
        Array.Fill(shape, 1);
        shape[0] = values.Length;
        var f = new float[values.Length];
        for (int i = 0; i < f.Length; i++) f[i] = (float)values[i];
        return Tensor.FromArray(f, shape);
    }
}

// Distributions over training timesteps, with importance weights that keep the loss unbiased: uniform, and the
// loss-aware sampler that draws t ∝ √E[L_t²] to reduce the variance of L_vlb (iDDPM §3.3, eq. 18).
// Reference: openai/improved-diffusion, improved_diffusion/resample.py (ScheduleSampler.sample, UniformSampler,
// LossSecondMomentResampler, create_named_schedule_sampler).
// Deviations: one process, so UpdateWithLocalLosses records the losses directly (the reference all-gathers them
// across ranks first); randomness comes from an explicit Rng, drawn as numpy.random.choice does (inverse CDF with
// side="right"), not from numpy's global generator; the loss history can be saved and restored for checkpoints.
namespace DiffuSharp.Diffusion;

/// <summary>A distribution over timesteps 0..T−1 for training, sampled with importance weights 1/(T·p_t).</summary>
public abstract class ScheduleSampler
{
    /// <summary>T, the number of timesteps the sampler draws from (0..T−1).</summary>
    public int NumTimesteps { get; }

    /// <summary>A sampler over <paramref name="numTimesteps"/> timesteps; throws when it is below 1.</summary>
    protected ScheduleSampler(int numTimesteps)
    {
        if (numTimesteps < 1) throw new ArgumentOutOfRangeException(nameof(numTimesteps), $"need at least one timestep, got {numTimesteps}");
        NumTimesteps = numTimesteps;
    }

    /// <summary>Unnormalised positive weights, one per timestep.</summary>
    public abstract double[] Weights();

    /// <summary>
    /// Draws batchSize timesteps with p_t ∝ Weights()[t] and returns them with the weights 1/(T·p_t), which make the
    /// weighted mean loss an unbiased estimate of the uniform one.
    /// </summary>
    public (int[] Timesteps, float[] Weights) Sample(int batchSize, Rng rng)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch size must be positive, got {batchSize}");
        ArgumentNullException.ThrowIfNull(rng);
        var w = Weights();
        int T = w.Length;
        // 1. p = w / Σw, and its CDF normalised so that the last entry is exactly 1.
        double sum = 0;
        foreach (double v in w) sum += v;
        var p = new double[T];
        var cdf = new double[T];
        double acc = 0;
        for (int i = 0; i < T; i++) { p[i] = w[i] / sum; cdf[i] = acc += p[i]; }
        for (int i = 0; i < T; i++) cdf[i] /= cdf[T - 1];
        // 2. Inverse-CDF draws: the first index whose CDF exceeds u (searchsorted, side="right").
        var ts = new int[batchSize];
        var weights = new float[batchSize];
        for (int b = 0; b < batchSize; b++)
        {
            double u = rng.NextDouble();
            int lo = 0, hi = T - 1;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (cdf[mid] > u) hi = mid; else lo = mid + 1;
            }
            ts[b] = lo;
            // 3. Importance weight 1/(T·p_t).
            weights[b] = (float)(1.0 / (T * p[lo]));
        }
        return (ts, weights);
    }

    /// <summary>"uniform" or "loss-second-moment" (the names of improved-diffusion's --schedule_sampler flag).</summary>
    public static ScheduleSampler Create(string name, GaussianDiffusion diffusion)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        return name switch
        {
            "uniform" => new UniformSampler(diffusion.NumTimesteps),
            "loss-second-moment" => new LossSecondMomentResampler(diffusion.NumTimesteps),
            _ => throw new ArgumentException($"unknown schedule sampler \"{name}\"; known samplers: \"uniform\", \"loss-second-moment\"", nameof(name)),
        };
    }
}

/// <summary>Every timestep equally likely; all weights 1.</summary>
public sealed class UniformSampler(int numTimesteps) : ScheduleSampler(numTimesteps)
{
    /// <summary>All ones: every timestep equally likely.</summary>
    public override double[] Weights()
    {
        var w = new double[NumTimesteps];
        Array.Fill(w, 1.0);
        return w;
    }
}

/// <summary>The saved state of a <see cref="LossSecondMomentResampler"/>: History is (T, historyPerTerm) row-major.</summary>
public sealed record LossSecondMomentState(double[] History, int[] Counts);

/// <summary>
/// p_t ∝ √E[L_t²] over the last <c>historyPerTerm</c> losses seen at t, mixed with a uniform share
/// <c>uniformProb</c>; uniform until every timestep has a full history (iDDPM §3.3).
/// </summary>
public sealed class LossSecondMomentResampler : ScheduleSampler
{
    readonly double[] _history;      // (T, H) row-major, oldest first
    readonly int[] _counts;          // losses recorded per timestep, at most H

    /// <summary>How many recent losses per timestep the second moment is estimated from (improved-diffusion:
    /// 10).</summary>
    public int HistoryPerTerm { get; }
    /// <summary>The share of probability spread uniformly over all timesteps so none reaches 0 (improved-diffusion:
    /// 0.001).</summary>
    public double UniformProb { get; }

    /// <summary>A loss-aware sampler over <paramref name="numTimesteps"/> timesteps; throws when historyPerTerm is
    /// below 1 or uniformProb lies outside [0, 1].</summary>
    public LossSecondMomentResampler(int numTimesteps, int historyPerTerm = 10, double uniformProb = 0.001) : base(numTimesteps)
    {
        if (historyPerTerm < 1) throw new ArgumentOutOfRangeException(nameof(historyPerTerm), $"history per term must be positive, got {historyPerTerm}");
        if (!(uniformProb >= 0 && uniformProb <= 1)) throw new ArgumentOutOfRangeException(nameof(uniformProb), $"uniform probability must lie in [0, 1], got {uniformProb}");
        HistoryPerTerm = historyPerTerm;
        UniformProb = uniformProb;
        _history = new double[numTimesteps * historyPerTerm];
        _counts = new int[numTimesteps];
    }

    /// <summary>True once every timestep has <see cref="HistoryPerTerm"/> losses.</summary>
    public bool WarmedUp => Array.TrueForAll(_counts, c => c == HistoryPerTerm);

    /// <summary>Before every timestep has a full history: all ones. After: √(mean L_t²) normalised and mixed with
    /// <see cref="UniformProb"/> of uniform probability.</summary>
    public override double[] Weights()
    {
        int T = NumTimesteps, H = HistoryPerTerm;
        var w = new double[T];
        if (!WarmedUp) { Array.Fill(w, 1.0); return w; }
        // 1. w_t = √(mean of L_t² over the history) (eq. 18), normalised.
        double sum = 0;
        for (int t = 0; t < T; t++)
        {
            double sq = 0;
            for (int k = 0; k < H; k++) sq += _history[t * H + k] * _history[t * H + k];
            sum += w[t] = Math.Sqrt(sq / H);
        }
        // 2. Mix with the uniform distribution so that no timestep's probability reaches 0.
        for (int t = 0; t < T; t++) w[t] = w[t] / sum * (1 - UniformProb) + UniformProb / T;
        return w;
    }

    /// <summary>Records the losses of a training batch: timesteps[i] had loss losses[i]. (Single process: the
    /// reference's all-gather across ranks is the identity.)</summary>
    public void UpdateWithLocalLosses(IReadOnlyList<int> timesteps, IReadOnlyList<float> losses)
    {
        if (timesteps.Count != losses.Count) throw new ArgumentException($"{timesteps.Count} timesteps but {losses.Count} losses");
        var all = new double[losses.Count];
        for (int i = 0; i < all.Length; i++) all[i] = losses[i];
        UpdateWithAllLosses(timesteps, all);
    }

    /// <summary>Appends each loss to its timestep's history, dropping the oldest once the history is full.</summary>
    public void UpdateWithAllLosses(IReadOnlyList<int> timesteps, IReadOnlyList<double> losses)
    {
        if (timesteps.Count != losses.Count) throw new ArgumentException($"{timesteps.Count} timesteps but {losses.Count} losses");
        int H = HistoryPerTerm;
        for (int i = 0; i < timesteps.Count; i++)
        {
            int t = timesteps[i];
            if ((uint)t >= (uint)NumTimesteps) throw new ArgumentOutOfRangeException(nameof(timesteps), $"timestep {t} is outside [0, {NumTimesteps})");
            if (_counts[t] == H)
            {
                Array.Copy(_history, t * H + 1, _history, t * H, H - 1);
                _history[t * H + H - 1] = losses[i];
            }
            else _history[t * H + _counts[t]++] = losses[i];
        }
    }

    /// <summary>A copy of the loss history and counts, for checkpoints.</summary>
    public LossSecondMomentState GetState() => new((double[])_history.Clone(), (int[])_counts.Clone());

    /// <summary>Restores a state from <see cref="GetState"/>; throws when it was saved for another T or history
    /// length.</summary>
    public void SetState(LossSecondMomentState state)
    {
        if (state.History.Length != _history.Length || state.Counts.Length != _counts.Length)
            throw new ArgumentException($"state holds {state.Counts.Length} timesteps × {(state.Counts.Length == 0 ? 0 : state.History.Length / state.Counts.Length)} losses, " +
                $"this sampler {NumTimesteps} × {HistoryPerTerm}");
        foreach (int c in state.Counts)
            if (c < 0 || c > HistoryPerTerm) throw new ArgumentException($"loss count {c} is outside [0, {HistoryPerTerm}]");
        state.History.CopyTo(_history, 0);
        state.Counts.CopyTo(_counts, 0);
    }
}

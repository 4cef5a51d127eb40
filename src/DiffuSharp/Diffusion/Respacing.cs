// Timestep respacing: keep a subset of a trained process's timesteps and sample with the process they define, so a
// model trained with T = 1000 samples in 50 or 250 steps (iDDPM §4, "Improving Sampling Speed"; DDIM §4.2).
// Reference: openai/improved-diffusion, improved_diffusion/respace.py (space_timesteps, SpacedDiffusion,
// _WrappedModel).
// Deviations: SpaceTimesteps returns the kept steps sorted (the reference returns a set; SpacedDiffusion sorts it
// anyway); the "ddimN" error names the requested count (the reference's message prints T instead); the wrapped
// model is a CallModel override (ModelTimesteps) rather than a wrapper object.
using System.Globalization;

namespace DiffuSharp.Diffusion;

/// <summary>Timestep respacing (iDDPM §4, improved-diffusion's respace.py): keep a subset of a trained process's
/// timesteps and sample with the shorter process they define, e.g. 50 or 250 steps of a T = 1000 model.</summary>
public static class Respacing
{
    /// <summary>
    /// The timesteps of a T-step process to keep. <paramref name="sectionCounts"/> is "ddimN" (a single integer
    /// stride i, the first with ⌈T/i⌉ = N, as in DDIM), or comma-separated step counts for equal sections of
    /// [0, T): "10,15,20" with T = 300 takes 10 steps from 0..99, 15 from 100..199 and 20 from 200..299, each
    /// section strided by (size − 1)/(count − 1) and rounded half to even (Python's round).
    /// </summary>
    public static int[] SpaceTimesteps(int numTimesteps, string sectionCounts)
    {
        if (numTimesteps < 1) throw new ArgumentOutOfRangeException(nameof(numTimesteps), $"need at least one timestep, got {numTimesteps}");
        ArgumentNullException.ThrowIfNull(sectionCounts);
        var spec = sectionCounts.Trim();
        if (spec.StartsWith("ddim", StringComparison.Ordinal))
        {
            // 1. DDIM striding: range(0, T, i) for the smallest i ≥ 1 that gives exactly N steps.
            if (!int.TryParse(spec.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out int desired) || desired < 1)
                throw new ArgumentException($"bad timestep respacing \"{sectionCounts}\": expected \"ddimN\" with N a positive integer", nameof(sectionCounts));
            for (int stride = 1; stride < numTimesteps; stride++)
                if ((numTimesteps + stride - 1) / stride == desired)
                {
                    var steps = new int[desired];
                    for (int k = 0; k < desired; k++) steps[k] = k * stride;
                    return steps;
                }
            throw new ArgumentException($"cannot take exactly {desired} of {numTimesteps} steps with an integer stride (\"{sectionCounts}\")", nameof(sectionCounts));
        }
        var parts = spec.Split(',');
        var counts = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out counts[i]))
                throw new ArgumentException($"bad timestep respacing \"{sectionCounts}\": \"{parts[i]}\" is not a non-negative integer (expected \"ddimN\" or counts like \"10,15,20\")", nameof(sectionCounts));
        return SpaceTimesteps(numTimesteps, counts);
    }

    /// <summary>Section-wise spacing: counts[i] steps from the i-th of counts.Length near-equal sections of [0, T).</summary>
    public static int[] SpaceTimesteps(int numTimesteps, IReadOnlyList<int> sectionCounts)
    {
        if (numTimesteps < 1) throw new ArgumentOutOfRangeException(nameof(numTimesteps), $"need at least one timestep, got {numTimesteps}");
        if (sectionCounts.Count == 0) throw new ArgumentException("timestep respacing needs at least one section count", nameof(sectionCounts));
        // 2. Sections of size ⌊T/n⌋, the first T mod n one step longer.
        int n = sectionCounts.Count, sizePer = numTimesteps / n, extra = numTimesteps % n, startIdx = 0;
        var all = new SortedSet<int>();
        for (int i = 0; i < n; i++)
        {
            int size = sizePer + (i < extra ? 1 : 0), count = sectionCounts[i];
            if (count < 0) throw new ArgumentException($"section count {count} is negative", nameof(sectionCounts));
            if (size < count) throw new ArgumentException($"cannot divide a section of {size} steps into {count} (section {i} of {n}, T = {numTimesteps})", nameof(sectionCounts));
            // 3. count points from 0 to size − 1 with a fractional stride, accumulated in float64 and rounded half
            //    to even as Python's round().
            double fracStride = count <= 1 ? 1 : (double)(size - 1) / (count - 1);
            double cur = 0.0;
            for (int k = 0; k < count; k++)
            {
                all.Add(startIdx + (int)Math.Round(cur, MidpointRounding.ToEven));
                cur += fracStride;
            }
            startIdx += size;
        }
        return all.ToArray();
    }
}

/// <summary>
/// A diffusion over a subset of a base process's timesteps: its ᾱ are the kept ᾱ of the base, its betas
/// β'_i = 1 − ᾱ_{k_i} / ᾱ_{k_{i−1}}, and the model always sees the base process's timesteps (mapped through
/// <see cref="TimestepMap"/>, then rescaled to 0..1000 if asked).
/// </summary>
public sealed class SpacedDiffusion : GaussianDiffusion
{
    readonly int[] _timestepMap;

    /// <summary>Index i of this process → timestep of the base process (ascending).</summary>
    public IReadOnlyList<int> TimestepMap => _timestepMap;

    /// <summary>T of the base process.</summary>
    public int OriginalNumSteps { get; }

    /// <param name="useTimesteps">Timesteps of the base process to keep (any order; duplicates ignored).</param>
    /// <param name="betas">The base process's betas.</param>
    public SpacedDiffusion(IEnumerable<int> useTimesteps, double[] betas, ModelMeanType modelMeanType, ModelVarType modelVarType, LossType lossType,
        bool rescaleTimesteps = false)
        : this(Respace(useTimesteps, betas), betas.Length, modelMeanType, modelVarType, lossType, rescaleTimesteps)
    {
    }

    SpacedDiffusion((double[] Betas, int[] Map) plan, int originalNumSteps, ModelMeanType meanType, ModelVarType varType, LossType lossType, bool rescale)
        : base(plan.Betas, meanType, varType, lossType, rescale)
    {
        _timestepMap = plan.Map;
        OriginalNumSteps = originalNumSteps;
    }

    static (double[] Betas, int[] Map) Respace(IEnumerable<int> useTimesteps, double[] betas)
    {
        ArgumentNullException.ThrowIfNull(useTimesteps);
        ArgumentNullException.ThrowIfNull(betas);
        var keep = new HashSet<int>(useTimesteps);
        foreach (int k in keep)
            if (k < 0 || k >= betas.Length) throw new ArgumentOutOfRangeException(nameof(useTimesteps), $"timestep {k} is outside the base process [0, {betas.Length})");
        if (keep.Count == 0) throw new ArgumentException("SpacedDiffusion needs at least one timestep to keep", nameof(useTimesteps));
        // 1. ᾱ of the base process (the same float64 cumulative product GaussianDiffusion computes).
        // 2. Walk it in order; at each kept step, β' = 1 − ᾱ_k / ᾱ_last so the new process has ᾱ'_i = ᾱ_{k_i}.
        var newBetas = new List<double>();
        var map = new List<int>();
        double cumprod = 1.0, last = 1.0;
        for (int i = 0; i < betas.Length; i++)
        {
            cumprod *= 1.0 - betas[i];
            if (!keep.Contains(i)) continue;
            newBetas.Add(1 - cumprod / last);
            last = cumprod;
            map.Add(i);
        }
        return (newBetas.ToArray(), map.ToArray());
    }

    /// <summary>The base process's timestep map[t] for each index, times 1000/T_base (rounded to float32) when rescaling
    /// (the reference's _WrappedModel).</summary>
    public override Tensor ModelTimesteps(int[] t)
    {
        var r = new float[t.Length];
        float scale = (float)(1000.0 / OriginalNumSteps);
        for (int i = 0; i < t.Length; i++) r[i] = RescaleTimesteps ? (float)_timestepMap[t[i]] * scale : _timestepMap[t[i]];
        return Tensor.Wrap(r, t.Length);
    }
}

// Beta schedules β_1..β_T of the forward process, in float64.
// Reference: openai/improved-diffusion, improved_diffusion/gaussian_diffusion.py, get_named_beta_schedule and
// betas_for_alpha_bar (https://github.com/openai/improved-diffusion). Linear: Ho et al. 2020 (DDPM) §4, scaled by
// 1000/T so that any T gives a similar process; cosine: Nichol & Dhariwal 2021, eq. (17).
// The linear schedule reproduces numpy.linspace bit for bit (i·step + start, last element = stop); the cosine one
// calls Math.Cos/Math.Pow, which are the platform libm's cos/pow, as Python's math module is.
namespace DiffuSharp.Diffusion;

/// <summary>Named beta schedules. Append-only: a checkpoint names its schedule, so values must never change.</summary>
public enum BetaSchedule
{
    /// <summary>DDPM's linear schedule from 1e-4 to 0.02, scaled by 1000/T so any T gives a similar process.</summary>
    Linear,
    /// <summary>iDDPM's cosine schedule (Nichol &amp; Dhariwal 2021, eq. 17): ᾱ_t follows cos², each β capped at
    /// 0.999.</summary>
    Cosine,
}

/// <summary>Beta schedules β_1..β_T of the forward process in float64, as improved-diffusion's get_named_beta_schedule
/// and betas_for_alpha_bar.</summary>
public static class NoiseSchedule
{
    /// <summary>The betas of a named schedule for <paramref name="numTimesteps"/> steps, float64.</summary>
    public static double[] GetNamedBetaSchedule(BetaSchedule schedule, int numTimesteps)
    {
        if (numTimesteps < 1) throw new ArgumentOutOfRangeException(nameof(numTimesteps), $"a schedule needs at least one timestep, got {numTimesteps}");
        switch (schedule)
        {
            case BetaSchedule.Linear:
            {
                // 1. DDPM's β_1 = 1e-4 … β_T = 0.02 for T = 1000, scaled by 1000/T for other T.
                double scale = 1000.0 / numTimesteps;
                // β_T = 20/T reaches 1 at T = 20: ᾱ_T is then 0 and every sample NaN (the reference asserts β ≤ 1
                // and fails below 20 steps; we refuse 20 too, with the reason).
                if (scale * 0.02 >= 1)
                    throw new ArgumentException($"the linear schedule needs more than 20 diffusion steps (β_T = 20/T = {scale * 0.02:G3} at T = {numTimesteps}); use more steps or the cosine schedule");
                return Linspace(scale * 0.0001, scale * 0.02, numTimesteps);
            }
            case BetaSchedule.Cosine:
                // 2. ᾱ(t) = cos²((t + s)/(1 + s) · π/2) with s = 0.008 (improved DDPM eq. 17), t ∈ [0, 1].
                return BetasForAlphaBar(numTimesteps, t => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2));
            default:
                throw new ArgumentOutOfRangeException(nameof(schedule), $"unknown beta schedule {schedule}");
        }
    }

    /// <summary>The betas of a schedule given by name ("linear", "cosine").</summary>
    public static double[] GetNamedBetaSchedule(string name, int numTimesteps) => GetNamedBetaSchedule(Parse(name), numTimesteps);

    /// <summary>"linear" → Linear, "cosine" → Cosine (the names improved-diffusion's flags and model.json use).</summary>
    public static BetaSchedule Parse(string name) => name switch
    {
        "linear" => BetaSchedule.Linear,
        "cosine" => BetaSchedule.Cosine,
        _ => throw new ArgumentException($"unknown beta schedule \"{name}\"; known schedules: \"linear\", \"cosine\"", nameof(name)),
    };

    /// <summary>The name improved-diffusion uses for a schedule ("linear", "cosine").</summary>
    public static string Name(BetaSchedule schedule) => schedule switch
    {
        BetaSchedule.Linear => "linear",
        BetaSchedule.Cosine => "cosine",
        _ => throw new ArgumentOutOfRangeException(nameof(schedule), $"unknown beta schedule {schedule}"),
    };

    /// <summary>ᾱ_t = Π_{s≤t} (1 − β_s), the sequential product (numpy.cumprod's order).</summary>
    public static double[] AlphasCumprod(ReadOnlySpan<double> betas)
    {
        var r = new double[betas.Length];
        double acc = 1.0;
        for (int i = 0; i < r.Length; i++) r[i] = acc *= 1.0 - betas[i];
        return r;
    }

    /// <summary>
    /// Betas that discretise a cumulative ᾱ(t), t ∈ [0, 1]: β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), maxBeta)
    /// (improved DDPM §3.2; maxBeta &lt; 1 avoids the singularity at t = 1).
    /// </summary>
    public static double[] BetasForAlphaBar(int numTimesteps, Func<double, double> alphaBar, double maxBeta = 0.999)
    {
        if (numTimesteps < 1) throw new ArgumentOutOfRangeException(nameof(numTimesteps), $"a schedule needs at least one timestep, got {numTimesteps}");
        var betas = new double[numTimesteps];
        for (int i = 0; i < numTimesteps; i++)
        {
            double t1 = (double)i / numTimesteps;
            double t2 = (double)(i + 1) / numTimesteps;
            betas[i] = Math.Min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
        }
        return betas;
    }

    /// <summary>numpy.linspace(start, stop, num) in float64, bit for bit: y_i = i·step + start, y_{num−1} = stop.</summary>
    internal static double[] Linspace(double start, double stop, int num)
    {
        var y = new double[num];
        if (num == 1) { y[0] = start; return y; }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++)
        {
            double v = i * step;                 // two roundings, as numpy (y *= step; y += start): no fused multiply-add
            y[i] = v + start;
        }
        y[num - 1] = stop;
        return y;
    }
}

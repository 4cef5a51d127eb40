// DPM-Solver-2 in k-diffusion's form (sample_dpm_2; Lu et al. 2022, "DPM-Solver", arXiv:2206.00927, Algorithm 1 with
// the midpoint taken in log σ, as Karras et al. 2022 use it), as diffusers 0.27.2's KDPM2DiscreteScheduler
// (src/diffusers/schedulers/scheduling_k_dpm_2_discrete.py): two model calls per step, the second at the
// geometric mean σ_mid = √(σ_i σ_{i+1}) with its own fractional timestep. The scheduler keeps the first call's
// sample until the second (its Order is 2).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' KDPM2DiscreteScheduler ("DPM2" in sd-webui): 2 model calls per step.</summary>
public sealed class KDpm2DiscreteScheduler : SigmaScheduler
{
    double[] _sigmasInterpol = [];
    Tensor? _firstSample;   // null: the next call is the first of a step

    /// <summary>A KDPM2 scheduler for <paramref name="config"/>; refuses prediction_type "sample", as diffusers' step
    /// does not support it.</summary>
    public KDpm2DiscreteScheduler(SchedulerConfig config) : base(config)
    {
        RefusePrediction(PredictionType.Sample);
        SetTimesteps(config.NumTrainTimesteps);
    }

    /// <summary>2: each step calls the model at σ_i and at the midpoint σ_mid = √(σ_i σ_{i+1}).</summary>
    public override int Order => 2;

    /// <summary>The interleaved timesteps of the σ_i and midpoint calls and the σ schedule, followed by a final σ of
    /// 0.</summary>
    protected override (double[] Timesteps, double[] Sigmas) BuildSchedule(double[] timesteps)
    {
        var (ts, full, interpol) = KDpm2Schedule.Build(this, timesteps, ancestral: false);
        _sigmasInterpol = interpol;
        _firstSample = null;
        return (ts, full);
    }

    /// <summary>sample / √(σ² + 1), with σ the step's σ_i on a first call and σ_mid on a second call.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        int i = CurrentIndex(timestep);
        float sigma = (float)(_firstSample is null ? SigmaArray[i] : _sigmasInterpol[i]);
        return sample / MathF.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>The first call moves x to σ_mid with the derivative at σ_i; the second takes the full step to σ_{i+1}
    /// with the derivative at σ_mid (DPM-Solver-2). Deterministic.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int i = CurrentIndex(timestep);
        bool first = _firstSample is null;
        // 1. σ_i, the midpoint σ_mid and σ_{i+1} of this step
        double sigma = first ? SigmaArray[i] : SigmaArray[i - 1];
        double sigmaMid = first ? _sigmasInterpol[i + 1] : _sigmasInterpol[i];
        double sigmaNext = first ? SigmaArray[i + 1] : SigmaArray[i];
        // 2. denoised x0 at this call's noise level (σ_i, then σ_mid)
        var predX0 = PredictX0(modelOutput, sample, first ? sigma : sigmaMid);
        Tensor prev;
        if (first)
        {
            // 3a. Euler half-step to the midpoint: x_mid = x + d (σ_mid − σ)
            _firstSample = sample;
            prev = sample + Div(sample - predX0, sigma) * (sigmaMid - sigma);
        }
        else
        {
            // 3b. full step from x_i with the midpoint's derivative: x_{i+1} = x_i + d_mid (σ_{i+1} − σ_i)
            prev = _firstSample! + Div(sample - predX0, sigmaMid) * (sigmaNext - sigma);
            _firstSample = null;
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, null);
    }
}

/// <summary>The interleaved schedules of KDPM2 and KDPM2 ancestral (diffusers' set_timesteps of both).</summary>
internal static class KDpm2Schedule
{
    /// <summary>[x_0, x_1, x_1, …, x_n, x_n, x_n] (torch.cat([x[:1], x[1:].repeat_interleave(2), x[-1:]])).</summary>
    public static double[] Interleave(double[] x)
    {
        var r = new double[2 * x.Length];
        r[0] = x[0];
        for (int i = 1; i < x.Length; i++) r[2 * i - 1] = r[2 * i] = x[i];
        r[^1] = x[^1];
        return r;
    }

    /// <summary>exp(lerp(log a, log b, ½)) in float32, as torch evaluates it (lerp at weight ½ is b − (b − a)/2, so a
    /// zero in b gives 0 and a zero in a gives NaN; diffusers never reads those entries).</summary>
    public static double GeometricMean(double a, double b)
    {
        float la = MathF.Log((float)a), lb = MathF.Log((float)b);
        return MathF.Exp(lb - (lb - la) * 0.5f);
    }

    /// <summary>
    /// Timesteps and σ tables for the spaced float32 timesteps: σ (interleaved), σ_mid (interleaved) and for the
    /// ancestral variant σ_up, σ_down (interleaved, returned through <paramref name="upDown"/>).
    /// </summary>
    public static (double[] Timesteps, double[] Sigmas, double[] Interpol) Build(SigmaScheduler owner, double[] timesteps, bool ancestral,
        Action<double[], double[]>? upDown = null)
    {
        int n = timesteps.Length;
        double[] sigmas = owner.InterpolatedSigmas(timesteps);
        bool karras = owner.Config.UseKarrasSigmas;
        if (karras)
        {
            (timesteps, sigmas) = owner.Karras(sigmas, n);
            for (int i = 0; i < n; i++) timesteps[i] = Math.Round(timesteps[i]);   // KDPM2 rounds Karras timesteps
        }
        var s = new double[n + 1];                                                  // σ_0 … σ_{n−1}, 0 in float32
        for (int i = 0; i < n; i++) s[i] = (float)sigmas[i];
        var interpol = new double[n + 1];
        double[]? up = null, down = null;
        if (!ancestral)
            for (int i = 0; i <= n; i++) interpol[i] = GeometricMean(s[i], s[(i + n) % (n + 1)]);   // with σ.roll(1)
        else
        {
            up = new double[n + 1];
            down = new double[n + 1];
            for (int i = 0; i <= n; i++)
            {
                float sf = (float)s[i], next = i < n ? (float)s[i + 1] : 0f;
                up[i] = MathF.Sqrt(next * next * (sf * sf - next * next) / (sf * sf));
                down[i] = i < n ? MathF.Sqrt(next * next - (float)up[i] * (float)up[i]) : 0;
                interpol[i] = i >= n - 1 ? 0 : GeometricMean(s[i], down[i]);
            }
        }
        // timesteps of the midpoints by _sigma_to_t; interleaved with the spaced ones
        var tMid = new double[n + 1];
        for (int i = 0; i <= n; i++) tMid[i] = ScheduleMath.SigmaToT(interpol[i], owner.LogSigmas);
        if (!karras) for (int i = 0; i <= n; i++) tMid[i] = (float)tMid[i];
        var ts = new double[2 * n - 1];
        ts[0] = timesteps[0];
        for (int i = 1; i < n; i++)
        {
            ts[2 * i - 1] = ancestral ? tMid[i - 1] : tMid[i];
            ts[2 * i] = timesteps[i];
        }
        if (ancestral) upDown!(Interleave(up!), Interleave(down!));
        return (ts, Interleave(s), Interleave(interpol));
    }
}

// Pseudo numerical methods for diffusion models (Liu, Ren, Lin & Zhao 2022, "Pseudo Numerical Methods for Diffusion
// Models on Manifolds", arXiv:2202.09778): the transfer φ of eq. (11) driven by a pseudo linear multistep (PLMS,
// eq. 12, a 4th-order Adams–Bashforth on ε) or pseudo Runge–Kutta (PRK, eq. 13) combination of model outputs, as
// diffusers 0.27.2's PNDMScheduler (src/diffusers/schedulers/scheduling_pndm.py). With skip_prk_steps (Stable
// Diffusion's setting) PLMS starts with a 2-call Heun-like step, so n steps take n + 1 model calls; without it the
// first 3 steps are PRK (4 calls each).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' PNDMScheduler ("PLMS" with skip_prk_steps, the PNDM paper's method without).</summary>
public sealed class PndmScheduler : Scheduler
{
    const int PndmOrder = 4;
    readonly double _finalAlphaCumprod;
    readonly List<Tensor> _ets = [];
    int[] _prkTimesteps = [];
    Tensor? _curSample;
    Tensor? _curModelOutput;   // the running PRK sum (diffusers starts it at 0)
    int _counter;

    /// <summary>A PNDM scheduler for <paramref name="config"/>; refuses prediction_type "sample", as diffusers' step
    /// does not support it.</summary>
    public PndmScheduler(SchedulerConfig config) : base(config)
    {
        if (config.PredictionType == PredictionType.Sample)
            throw new InvalidDataException("PNDMScheduler: prediction_type 'sample' is not supported (diffusers: epsilon or v_prediction)");
        _finalAlphaCumprod = config.SetAlphaToOne ? 1.0 : AlphasCumprod[0];
    }

    /// <summary>The PLMS timesteps (with skip_prk_steps, the second one repeated for PLMS's 2-call start) or the PRK
    /// warm-up timesteps followed by the PLMS ones; clears the stored model outputs.</summary>
    protected override double[] ComputeTimesteps(int n)
    {
        // ascending spaced timesteps
        var asc = ScheduleMath.SpacedTimesteps(Config, n, discrete: true).Reverse().Select(t => (int)t).ToArray();
        int[] plms;
        if (Config.SkipPrkSteps)
        {
            _prkTimesteps = [];
            // [t_0 … t_{n−2}, t_{n−2}, t_{n−1}] reversed: the second timestep is repeated for PLMS's 2-call start
            plms = [.. asc[..^1], asc[^2], asc[^1]];
            Array.Reverse(plms);
        }
        else
        {
            // the last 4 timesteps with their half-steps, each repeated: PRK's 4 calls per step
            int half = Config.NumTrainTimesteps / n / 2;
            var prk = new List<int>();
            foreach (var t in asc[^PndmOrder..]) { prk.Add(t); prk.Add(t + half); }
            var rep = new List<int>();
            foreach (var t in prk[..^1]) { rep.Add(t); rep.Add(t); }
            _prkTimesteps = [.. rep[1..^1]];
            Array.Reverse(_prkTimesteps);
            plms = asc[..^3];
            Array.Reverse(plms);
        }
        _ets.Clear();
        _counter = 0;
        _curModelOutput = null;
        _curSample = null;
        return [.. _prkTimesteps.Concat(plms).Select(t => (double)t)];
    }

    /// <summary>One PRK or PLMS call: combines this model output with the stored ones and applies the transfer φ (eq.
    /// 11) to the next timestep. Deterministic.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        RequireTimesteps();
        CheckShapes(modelOutput, sample);
        int t = TrainIndex(timestep);
        var prev = _counter < _prkTimesteps.Length && !Config.SkipPrkSteps ? StepPrk(modelOutput, t, sample) : StepPlms(modelOutput, t, sample);
        _counter++;
        return new SchedulerStepOutput(prev, null);
    }

    // PRK, eq. (13): ε' = (e1 + 2 e2 + 2 e3 + e4)/6 from 4 calls at t, t − δ/2, t − δ/2, t − δ
    Tensor StepPrk(Tensor modelOutput, int timestep, Tensor sample)
    {
        int diffToPrev = _counter % 2 == 1 ? 0 : Config.NumTrainTimesteps / NumInferenceSteps / 2;
        int prevT = timestep - diffToPrev;
        int t = _prkTimesteps[_counter / 4 * 4];
        switch (_counter % 4)
        {
            case 0:
                _curModelOutput = Accumulate(modelOutput * (1.0 / 6));
                _ets.Add(modelOutput);
                _curSample = sample;
                break;
            case 1:
            case 2:
                _curModelOutput = Accumulate(modelOutput * (1.0 / 3));
                break;
            default:
                modelOutput = Accumulate(modelOutput * (1.0 / 6));
                _curModelOutput = null;
                break;
        }
        return PrevSample(_curSample ?? sample, t, prevT, modelOutput);
    }

    Tensor Accumulate(Tensor term) => _curModelOutput is null ? term : _curModelOutput + term;

    // PLMS, eq. (12): ε' = (55 e_t − 59 e_{t−δ} + 37 e_{t−2δ} − 9 e_{t−3δ})/24, lower orders while the history fills
    Tensor StepPlms(Tensor modelOutput, int timestep, Tensor sample)
    {
        if (!Config.SkipPrkSteps && _ets.Count < 3)
            throw new InvalidOperationException("PNDMScheduler: PLMS steps follow the 12 PRK calls (pass the timesteps in order)");
        int ratio = Config.NumTrainTimesteps / NumInferenceSteps;
        int prevT = timestep - ratio;
        if (_counter != 1)
        {
            if (_ets.Count > 3) _ets.RemoveRange(0, _ets.Count - 3);
            _ets.Add(modelOutput);
        }
        else
        {
            // the second call of the 2-call start re-evaluates at t − δ: step from the first call's x_t
            prevT = timestep;
            timestep += ratio;
        }
        int n = _ets.Count;
        Tensor eps;
        if (n == 1 && _counter == 0) { eps = modelOutput; _curSample = sample; }
        else if (n == 1 && _counter == 1) { eps = (modelOutput + _ets[^1]) / 2; sample = _curSample!; _curSample = null; }
        else if (n == 2) eps = (3 * _ets[^1] - _ets[^2]) / 2;
        else if (n == 3) eps = (23 * _ets[^1] - 16 * _ets[^2] + 5 * _ets[^3]) / 12;
        else eps = (1.0 / 24) * (55 * _ets[^1] - 59 * _ets[^2] + 37 * _ets[^3] - 9 * _ets[^4]);
        return PrevSample(sample, timestep, prevT, eps);
    }

    // The transfer φ of eq. (11): x_{t−δ} = √(ᾱ_{t−δ}/ᾱ_t) x_t − (ᾱ_{t−δ} − ᾱ_t) ε / (ᾱ_t √(1−ᾱ_{t−δ}) + √(ᾱ_t (1−ᾱ_t) ᾱ_{t−δ}))
    Tensor PrevSample(Tensor sample, int t, int prevT, Tensor modelOutput)
    {
        double a = AlphasCumprod[t], aPrev = prevT >= 0 ? AlphasCumprod[prevT] : _finalAlphaCumprod;
        double b = 1 - a, bPrev = 1 - aPrev;
        if (Config.PredictionType == PredictionType.VPrediction)
            modelOutput = Math.Sqrt(a) * modelOutput + Math.Sqrt(b) * sample;   // ε from v
        double sampleCoeff = Math.Sqrt(aPrev / a);
        double denom = a * Math.Sqrt(bPrev) + Math.Sqrt(a * b * aPrev);
        return sampleCoeff * sample - (aPrev - a) / denom * modelOutput;
    }
}

// UniPC multistep: diffusers' UniPCMultistepScheduler. Paper: Zhao et al. 2023, "UniPC: A Unified
// Predictor-Corrector Framework for Fast Sampling of Diffusion Models" (arXiv:2302.04867): the predictor UniP-p
// (Algorithm 2 / eq. 8) and the corrector UniC-p (Algorithm 1 / eq. 7) with B(h) = h ("bh1") or e^h − 1 ("bh2"),
// in the data-prediction (predict_x0) or noise-prediction form. The corrector reuses the model output of the new
// point, so it costs no extra model call.
// Reference: diffusers 0.27.2 src/diffusers/schedulers/scheduling_unipc_multistep.py (multistep_uni_p_bh_update,
// multistep_uni_c_bh_update, step).
// Notation: the predictor at step i goes from s0 = σ-table entry i to t = entry i + 1; the corrector at step i
// corrects the sample at entry i from the previous sample at entry i − 1. h = λ_t − λ_s0, hh = −h (x0 form) or h
// (ε form); r_k = (λ_{s_k} − λ_s0)/h; D_k = (m_k − m0)/r_k; the ρ weights solve R ρ = b with R_{jk} = r_k^j and
// b_j = j!·φ_{j+1}(hh)·hh/B(h) (Algorithm 1's φ recursion).
// Deviations: solver_p (another scheduler as predictor) is not offered; the small systems R ρ = b are solved in
// double (diffusers: torch.linalg.solve in float32).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' UniPCMultistepScheduler: UniP predictor + UniC corrector (bh1 / bh2, x0 or ε form).</summary>
public sealed class UniPcMultistepScheduler : ExponentialIntegratorScheduler
{
    readonly SolverType _solver;
    readonly HashSet<int> _disableCorrector;
    readonly Tensor?[] _modelOutputs;     // converted outputs of the last solver_order steps, newest last
    int _lowerOrderNums;                  // steps taken so far, capped at solver_order
    int _thisOrder;                       // the predictor order of the previous step (the corrector's order now)
    Tensor? _lastSample;                  // the sample the previous predictor started from

    /// <summary>Builds the scheduler from a UniPCMultistepScheduler config.</summary>
    /// <exception cref="ArgumentException">A solver order below 1.</exception>
    public UniPcMultistepScheduler(SchedulerConfig config) : base(config)
    {
        if (config.SolverOrder < 1)
            throw new ArgumentException($"UniPCMultistepScheduler: solver_order must be at least 1, got {config.SolverOrder}");
        _solver = config.SolverType is SolverType.Bh1 ? SolverType.Bh1 : SolverType.Bh2;   // midpoint/heun/logrho → bh2, as diffusers
        _disableCorrector = [.. config.DisableCorrector];
        _modelOutputs = new Tensor?[config.SolverOrder];
    }

    /// <inheritdoc/>
    protected override double[] ComputeTimesteps(int numInferenceSteps)
    {
        Array.Clear(_modelOutputs);
        _lowerOrderNums = 0;
        _lastSample = null;
        return SpacedScheduleEndingAtSigmaMin(numInferenceSteps);
    }

    /// <summary>
    /// One UniPC step at <paramref name="timestep"/>: first UniC corrects <paramref name="sample"/> with this model
    /// output, then UniP predicts the next sample. modelOutput, sample: (B, C, H, W). Deterministic:
    /// <paramref name="noise"/> is not used. PredOriginalSample is x0 in the predict_x0 form, else null.
    /// </summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        int i = CurrentStepIndex(timestep);
        int n = Timesteps.Count;
        modelOutput = MeanPart(modelOutput, sample);

        // 1. the model output in the solver's form: x0 (thresholded when asked) or ε
        Tensor mT = Config.PredictX0 ? DataPrediction(modelOutput, sample, i) : NoisePrediction(modelOutput, sample, i);

        // 2. UniC: correct the sample of this step with its own model output (none at the first step, nor after a
        //    step listed in disable_corrector)
        if (i > 0 && !_disableCorrector.Contains(i - 1) && _lastSample is not null)
            sample = Corrector(mT, _lastSample, sample, i, _thisOrder);

        for (int k = 0; k < _modelOutputs.Length - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[^1] = mT;

        // 3. the predictor order: solver_order, lowered near the end (lower_order_final) and during the warm-up
        int order = Config.LowerOrderFinal ? Math.Min(Config.SolverOrder, n - i) : Config.SolverOrder;
        _thisOrder = Math.Min(order, _lowerOrderNums + 1);

        // 4. UniP from the (corrected) sample
        _lastSample = sample;
        Tensor prev = Predictor(sample, i, _thisOrder);
        if (_lowerOrderNums < Config.SolverOrder) _lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, Config.PredictX0 ? mT : null);
    }

    /// <summary>UniP-p (Algorithm 2): x_t = (σ_t/σ_s0) x − α_t (e^{hh} − 1) m0 − α_t B(h) Σ_k ρ_k D_k in the x0 form
    /// ((α_t/α_s0), σ_t in the ε form); ρ = 1/2 for p = 2, else R[:p−1, :p−1] ρ = b[:p−1].</summary>
    Tensor Predictor(Tensor x, int i, int order)
    {
        var (alphaS0, sigmaS0, lambdaS0) = At(i);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        double h = lambdaT - lambdaS0;
        Tensor m0 = _modelOutputs[^1]!;
        var (baseTerm, scale, hh) = Update(x, m0, alphaS0, sigmaS0, alphaT, sigmaT, h);
        if (order == 1) return baseTerm;
        var (rks, d1s) = Differences(m0, lambdaS0, h, order, k => i - k);
        double[] rhos = order == 2 ? [0.5] : Solve(RMatrix(rks, order - 1), BVector(hh, order)[..(order - 1)]);
        return baseTerm - scale * Weighted(rhos, d1s, rhos.Length);
    }

    /// <summary>UniC-p (Algorithm 1): the same update from the previous sample, with the new output mT as one more
    /// difference D_t = mT − m0 and ρ = 1/2 for p = 1, else R ρ = b (p × p).</summary>
    Tensor Corrector(Tensor mT, Tensor lastSample, Tensor thisSample, int i, int order)
    {
        var (alphaS0, sigmaS0, lambdaS0) = At(i - 1);
        var (alphaT, sigmaT, lambdaT) = At(i);
        double h = lambdaT - lambdaS0;
        Tensor m0 = _modelOutputs[^1]!;
        var (baseTerm, scale, hh) = Update(lastSample, m0, alphaS0, sigmaS0, alphaT, sigmaT, h);
        var (rks, d1s) = Differences(m0, lambdaS0, h, order, k => i - (k + 1));
        double[] rhos = order == 1 ? [0.5] : Solve(RMatrix(rks, order), BVector(hh, order));
        Tensor correction = rhos[^1] * (mT - m0);
        if (d1s.Count > 0) correction = Weighted(rhos, d1s, d1s.Count) + correction;
        return baseTerm - scale * correction;
    }

    /// <summary>The first-order part of both updates and the factor of the higher-order terms:
    /// x0 form (σ_t/σ_s0) x − α_t (e^{−h} − 1) m0 and α_t B(h); ε form (α_t/α_s0) x − σ_t (e^h − 1) m0 and σ_t B(h).</summary>
    (Tensor Base, double Scale, double Hh) Update(Tensor x, Tensor m0, double alphaS0, double sigmaS0, double alphaT, double sigmaT, double h)
    {
        double hh = Config.PredictX0 ? -h : h;
        double hPhi1 = ExpM1(hh);                                          // h φ_1(h) = e^h − 1
        double bH = _solver == SolverType.Bh1 ? hh : ExpM1(hh);
        return Config.PredictX0
            ? (sigmaT / sigmaS0 * x - alphaT * hPhi1 * m0, alphaT * bH, hh)
            : (alphaT / alphaS0 * x - sigmaT * hPhi1 * m0, sigmaT * bH, hh);
    }

    /// <summary>r_k = (λ_{s_k} − λ_s0)/h and D_k = (m_k − m0)/r_k for k = 1..order−1 (m_k = the k-th earlier output,
    /// its σ-table entry given by <paramref name="entry"/>).</summary>
    (double[] Rks, List<Tensor> D1s) Differences(Tensor m0, double lambdaS0, double h, int order, Func<int, int> entry)
    {
        var rks = new double[order];
        var d1s = new List<Tensor>(order);
        for (int k = 1; k < order; k++)
        {
            var (_, _, lambdaSk) = At(entry(k));
            double rk = (lambdaSk - lambdaS0) / h;
            rks[k - 1] = rk;
            d1s.Add((_modelOutputs[^(k + 1)]! - m0) / rk);
        }
        rks[order - 1] = 1;
        return (rks, d1s);
    }

    /// <summary>R_{jk} = r_k^j for j, k &lt; size.</summary>
    static double[,] RMatrix(double[] rks, int size)
    {
        var r = new double[size, size];
        for (int j = 0; j < size; j++)
            for (int k = 0; k < size; k++) r[j, k] = Math.Pow(rks[k], j);
        return r;
    }

    /// <summary>b_j = h φ_{j+1}-terms of Algorithm 1: b_j = (j+1)!·φ_{j+1}(hh)·hh / B(h), by the recursion
    /// φ ← φ/hh − 1/(j+1)! starting from (e^{hh} − 1)/hh − 1.</summary>
    double[] BVector(double hh, int order)
    {
        double bH = _solver == SolverType.Bh1 ? hh : ExpM1(hh);
        double hPhiK = ExpM1(hh) / hh - 1;
        double factorial = 1;
        var b = new double[order];
        for (int k = 1; k <= order; k++)
        {
            b[k - 1] = hPhiK * factorial / bH;
            factorial *= k + 1;
            hPhiK = hPhiK / hh - 1 / factorial;
        }
        return b;
    }

    /// <summary>Σ_{k &lt; count} ρ_k D_k.</summary>
    static Tensor Weighted(double[] rhos, List<Tensor> d1s, int count)
    {
        Tensor sum = rhos[0] * d1s[0];
        for (int k = 1; k < count; k++) sum += rhos[k] * d1s[k];
        return sum;
    }

    /// <summary>Solves the small system A x = b by Gaussian elimination with partial pivoting.</summary>
    static double[] Solve(double[,] a, double[] b)
    {
        int n = b.Length;
        var m = (double[,])a.Clone();
        var x = (double[])b.Clone();
        for (int c = 0; c < n; c++)
        {
            int p = c;
            for (int r = c + 1; r < n; r++) if (Math.Abs(m[r, c]) > Math.Abs(m[p, c])) p = r;
            if (p != c)
            {
                for (int k = 0; k < n; k++) (m[c, k], m[p, k]) = (m[p, k], m[c, k]);
                (x[c], x[p]) = (x[p], x[c]);
            }
            for (int r = c + 1; r < n; r++)
            {
                double f = m[r, c] / m[c, c];
                for (int k = c; k < n; k++) m[r, k] -= f * m[c, k];
                x[r] -= f * x[c];
            }
        }
        for (int r = n - 1; r >= 0; r--)
        {
            double s = x[r];
            for (int k = r + 1; k < n; k++) s -= m[r, k] * x[k];
            x[r] = s / m[r, r];
        }
        return x;
    }

    /// <summary>e^x − 1 without cancellation for small x (torch.expm1).</summary>
    static double ExpM1(double x) => Math.Abs(x) < 1e-5 ? x + x * x / 2 + x * x * x / 6 : Math.Exp(x) - 1;
}

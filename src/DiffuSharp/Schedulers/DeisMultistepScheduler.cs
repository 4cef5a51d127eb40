// DEIS multistep (orders 1-3, the "logρ" variant): diffusers' DEISMultistepScheduler. Paper: Zhang & Chen 2022,
// "Fast Sampling of Diffusion Models with Exponential Integrator" (arXiv:2204.13902): ρAB-DEIS, §4, eq. 15 —
// the ODE dx/dρ = ε(x, ρ) for x/α in ρ = σ/α, with ε extrapolated by the Lagrange polynomial (in log ρ) through the
// last k outputs and integrated exactly over [ρ_s0, ρ_t].
// Reference: diffusers 0.27.2 src/diffusers/schedulers/scheduling_deis_multistep.py.
// Notation: step i goes from s0 = σ-table entry i to t = entry i + 1; ρ = σ'/α (= the table's σ); m0, m1, m2 = the
// noise predictions of steps i, i − 1, i − 2 (recomputed from the thresholded x0 when thresholding is on).
// Deviations: "dpmsolver"/"dpmsolver++" as algorithm_type and midpoint/heun/bh1/bh2 as solver_type are read as
// deis / logrho, as diffusers' constructor rewrites them.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' DEISMultistepScheduler: DEIS (logρ) multistep of order 1-3.</summary>
public sealed class DeisMultistepScheduler : ExponentialIntegratorScheduler
{
    readonly Tensor?[] _modelOutputs;     // ε of the last solver_order steps, newest last
    int _lowerOrderNums;                  // steps taken so far, capped at solver_order

    /// <summary>Builds the scheduler from a DEISMultistepScheduler config.</summary>
    /// <exception cref="ArgumentException">An order outside 1-3, or an algorithm type other than deis / dpmsolver(++).</exception>
    public DeisMultistepScheduler(SchedulerConfig config) : base(config)
    {
        if (config.SolverOrder is < 1 or > 3)
            throw new ArgumentException($"DEISMultistepScheduler: solver_order must be 1, 2 or 3, got {config.SolverOrder}");
        if (config.AlgorithmType is not (AlgorithmType.Deis or AlgorithmType.DpmSolver or AlgorithmType.DpmSolverPlusPlus))
            throw new ArgumentException("DEISMultistepScheduler: algorithm_type must be \"deis\"");
        _modelOutputs = new Tensor?[config.SolverOrder];
    }

    /// <inheritdoc/>
    protected override double[] ComputeTimesteps(int numInferenceSteps)
    {
        Array.Clear(_modelOutputs);
        _lowerOrderNums = 0;
        return SpacedScheduleEndingAtSigmaMin(numInferenceSteps);
    }

    /// <summary>
    /// One DEIS step from <paramref name="timestep"/>. modelOutput, sample: (B, C, H, W). Deterministic:
    /// <paramref name="noise"/> is not used. PredOriginalSample is the (thresholded) x0 of this step.
    /// </summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        int i = CurrentStepIndex(timestep);
        int n = Timesteps.Count;
        modelOutput = MeanPart(modelOutput, sample);

        // 1. the order: warm up from 1, lower it at the last two steps of short runs
        bool lowerOrderFinal = i == n - 1 && Config.LowerOrderFinal && n < 15;
        bool lowerOrderSecond = i == n - 2 && Config.LowerOrderFinal && n < 15;
        int order = Config.SolverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal ? 1
                  : Config.SolverOrder == 2 || _lowerOrderNums < 2 || lowerOrderSecond ? 2 : 3;

        // 2. ε as DEIS integrates it, through x0 so that thresholding applies: ε = (x_t − α x0)/σ
        var (alpha, sigma, _) = At(i);
        Tensor x0 = DataPrediction(modelOutput, sample, i);
        Tensor eps = (sample - alpha * x0) / sigma;
        for (int k = 0; k < _modelOutputs.Length - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[^1] = eps;

        // 3. x_t = α_t (x_s0/α_s0 + Σ_j c_j m_j), c_j = ∫_{ρ_s0}^{ρ_t} ℓ_j(ρ) dρ for the Lagrange basis ℓ_j in log ρ
        Tensor prev = order switch
        {
            1 => FirstOrder(eps, sample, i),
            2 => SecondOrder(sample, i),
            _ => ThirdOrder(sample, i),
        };
        if (_lowerOrderNums < Config.SolverOrder) _lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, x0);
    }

    /// <summary>First order: DDIM, x_t = (α_t/α_s) x_s − σ_t (e^h − 1) ε with h = λ_t − λ_s.</summary>
    Tensor FirstOrder(Tensor eps, Tensor x, int i)
    {
        var (alphaS, _, lambdaS) = At(i);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        double h = lambdaT - lambdaS;
        return alphaT / alphaS * x - sigmaT * (Math.Exp(h) - 1) * eps;
    }

    /// <summary>Second order: the linear Lagrange basis in log ρ through (ρ_s0, ρ_s1), integrated in ρ.</summary>
    Tensor SecondOrder(Tensor x, int i)
    {
        var (alphaS0, _, _) = At(i);
        var (alphaT, _, _) = At(i + 1);
        double rhoT = Rho(i + 1), rhoS0 = Rho(i), rhoS1 = Rho(i - 1);
        // ∫ (log t − log c)/(log b − log c) dt = t (log t − log c − 1)/(log b − log c)
        static double Ind(double t, double b, double c) => t * (-Math.Log(c) + Math.Log(t) - 1) / (Math.Log(b) - Math.Log(c));
        double c1 = Ind(rhoT, rhoS0, rhoS1) - Ind(rhoS0, rhoS0, rhoS1);
        double c2 = Ind(rhoT, rhoS1, rhoS0) - Ind(rhoS0, rhoS1, rhoS0);
        return alphaT * (x / alphaS0 + c1 * _modelOutputs[^1]! + c2 * _modelOutputs[^2]!);
    }

    /// <summary>Third order: the quadratic Lagrange basis in log ρ through (ρ_s0, ρ_s1, ρ_s2), integrated in ρ.</summary>
    Tensor ThirdOrder(Tensor x, int i)
    {
        var (alphaS0, _, _) = At(i);
        var (alphaT, _, _) = At(i + 1);
        double rhoT = Rho(i + 1), rhoS0 = Rho(i), rhoS1 = Rho(i - 1), rhoS2 = Rho(i - 2);
        // ∫ (log t − log c)(log t − log d) / ((log b − log c)(log b − log d)) dt
        static double Ind(double t, double b, double c, double d)
        {
            double lt = Math.Log(t), lb = Math.Log(b), lc = Math.Log(c), ld = Math.Log(d);
            double numerator = t * (lc * (ld - lt + 1) - ld * lt + ld + lt * lt - 2 * lt + 2);
            return numerator / ((lb - lc) * (lb - ld));
        }
        double c1 = Ind(rhoT, rhoS0, rhoS1, rhoS2) - Ind(rhoS0, rhoS0, rhoS1, rhoS2);
        double c2 = Ind(rhoT, rhoS1, rhoS2, rhoS0) - Ind(rhoS0, rhoS1, rhoS2, rhoS0);
        double c3 = Ind(rhoT, rhoS2, rhoS0, rhoS1) - Ind(rhoS0, rhoS2, rhoS0, rhoS1);
        return alphaT * (x / alphaS0 + c1 * _modelOutputs[^1]! + c2 * _modelOutputs[^2]! + c3 * _modelOutputs[^3]!);
    }

    /// <summary>ρ = σ'/α at entry i of the σ table.</summary>
    double Rho(int i)
    {
        var (alpha, sigma, _) = At(i);
        return sigma / alpha;
    }
}

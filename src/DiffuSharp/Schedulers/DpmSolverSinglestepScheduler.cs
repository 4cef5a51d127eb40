// DPM-Solver and DPM-Solver++ singlestep (orders 1-3): diffusers' DPMSolverSinglestepScheduler. Papers: Lu et al.
// 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling in Around 10 Steps"
// (arXiv:2206.00927, Algorithms 1-2: DPM-Solver-2 and -3, where the intermediate points of one solver step are
// the following inference timesteps) and Lu et al. 2022, "DPM-Solver++" (arXiv:2211.01095, Algorithm 1, the data
// prediction form). Reference: diffusers 0.27.2 src/diffusers/schedulers/scheduling_dpmsolver_singlestep.py.
// A run is split into groups by the order list (e.g. 1, 2, 3, 1, 2, 3, …): each group starts from the sample at its
// first step and its k-th step is a solver of order k from there, so the model outputs inside a group are the
// intermediate evaluations of one singlestep solver.
// Notation: step i ends at t = σ-table entry i + 1; s0, s1, s2 = entries i, i − 1, i − 2; m0, m1, m2 their converted
// model outputs; λ = log(α/σ).
// Deviations: as diffusers' set_timesteps, lower_order_final turns on (for good) when the steps are not a multiple of
// the order or the final σ is 0; diffusers slices a learned-range output to 3 channels, here the first C of 2C.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' DPMSolverSinglestepScheduler: DPM-Solver(++) singlestep of order 1-3.</summary>
public sealed class DpmSolverSinglestepScheduler : ExponentialIntegratorScheduler
{
    readonly AlgorithmType _algorithm;
    readonly SolverType _solver;
    readonly Tensor?[] _modelOutputs;     // converted outputs of the last solver_order steps, newest last
    Tensor? _groupSample;                 // the sample at the first step of the current group
    int[] _orders = [];                   // the solver order of every step
    bool _lowerOrderFinal;

    /// <summary>Builds the scheduler from a DPMSolverSinglestepScheduler config.</summary>
    /// <exception cref="ArgumentException">An order outside 1-3, an SDE algorithm, or final_sigmas_type "zero" with dpmsolver.</exception>
    public DpmSolverSinglestepScheduler(SchedulerConfig config) : base(config)
    {
        _algorithm = config.AlgorithmType == AlgorithmType.Deis ? AlgorithmType.DpmSolverPlusPlus : config.AlgorithmType;
        _solver = config.SolverType is SolverType.Midpoint or SolverType.Heun ? config.SolverType : SolverType.Midpoint;
        if (config.SolverOrder is < 1 or > 3)
            throw new ArgumentException($"DPMSolverSinglestepScheduler: solver_order must be 1, 2 or 3, got {config.SolverOrder}");
        if (_algorithm is not (AlgorithmType.DpmSolverPlusPlus or AlgorithmType.DpmSolver))
            throw new ArgumentException("DPMSolverSinglestepScheduler: algorithm_type must be \"dpmsolver++\" or \"dpmsolver\" (the SDE variants are multistep only)");
        if (_algorithm == AlgorithmType.DpmSolver && config.FinalSigmasType == FinalSigmasType.Zero)
            throw new ArgumentException("DPMSolverSinglestepScheduler: final_sigmas_type \"zero\" is not supported for algorithm_type \"dpmsolver\"; use \"sigma_min\"");
        _modelOutputs = new Tensor?[config.SolverOrder];
        _lowerOrderFinal = config.LowerOrderFinal;
    }

    bool IsDataPrediction => _algorithm == AlgorithmType.DpmSolverPlusPlus;

    /// <summary>The solver order of each step of the current run.</summary>
    public IReadOnlyList<int> OrderList => _orders;

    /// <inheritdoc/>
    protected override double[] ComputeTimesteps(int numInferenceSteps)
    {
        int n = numInferenceSteps;
        // always "linspace" (the class has no timestep_spacing), below the λ clipping
        double[] timesteps = SpacedTimesteps(n, Config.NumTrainTimesteps - ClippedIndex(), TimestepSpacing.Linspace);
        double[] sigmas;
        if (Config.UseKarrasSigmas) (sigmas, timesteps) = KarrasSchedule(n);
        else sigmas = SigmasAt(timesteps);
        double sigmaLast = Config.FinalSigmasType == FinalSigmasType.SigmaMin ? TrainSigmas[0] : 0;
        SetSigmas([.. sigmas, sigmaLast]);
        // an uneven group at the end, or a final σ of 0, needs the lower orders there (diffusers rewrites its config)
        if (!_lowerOrderFinal && (n % Config.SolverOrder != 0 || Config.FinalSigmasType == FinalSigmasType.Zero))
            _lowerOrderFinal = true;
        _orders = OrderListFor(n, Config.SolverOrder, _lowerOrderFinal);
        Array.Clear(_modelOutputs);
        _groupSample = null;
        return timesteps;
    }

    /// <summary>diffusers' get_order_list: 1, 2, …, order repeated; with lower_order_final the tail ends in orders
    /// that fit the remaining steps, finishing with a first-order step.</summary>
    static int[] OrderListFor(int steps, int order, bool lowerOrderFinal)
    {
        var r = new List<int>(steps);
        void Repeat(int[] group, int times) { for (int k = 0; k < times; k++) r.AddRange(group); }
        if (order == 1) Repeat([1], steps);
        else if (!lowerOrderFinal) Repeat(order == 2 ? [1, 2] : [1, 2, 3], steps / order);
        else if (order == 2)
        {
            if (steps % 2 == 0) { Repeat([1, 2], steps / 2 - 1); r.AddRange([1, 1]); }
            else { Repeat([1, 2], steps / 2); r.Add(1); }
        }
        else
        {
            if (steps % 3 == 0) { Repeat([1, 2, 3], steps / 3 - 1); r.AddRange([1, 2, 1]); }
            else if (steps % 3 == 1) { Repeat([1, 2, 3], steps / 3); r.Add(1); }
            else { Repeat([1, 2, 3], steps / 3); r.AddRange([1, 2]); }
        }
        return [.. r];
    }

    /// <summary>
    /// One step of the singlestep solver from <paramref name="timestep"/>. modelOutput: (B, C, H, W) (or (B, 2C, H, W)
    /// with a learned-range variance); sample: (B, C, H, W). Deterministic: <paramref name="noise"/> is not used.
    /// PredOriginalSample is x0 for dpmsolver++ and null for dpmsolver.
    /// </summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        int i = CurrentStepIndex(timestep);
        if (i >= _orders.Length)
            throw new InvalidOperationException($"DPMSolverSinglestepScheduler: step {i} has no solver order (the order list has {_orders.Length})");
        modelOutput = MeanPart(modelOutput, sample);

        // 1. the model output as the solver integrates it: x0 (DPM-Solver++ eq. 3) or ε
        Tensor m0 = IsDataPrediction ? DataPrediction(modelOutput, sample, i) : NoisePrediction(modelOutput, sample, i);
        for (int k = 0; k < _modelOutputs.Length - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[^1] = m0;

        // 2. this step's order; an img2img start inside a group has fewer outputs, so lower it to what exists
        int order = _orders[i];
        while (_modelOutputs[^order] is null) order--;

        // 3. a group starts (order 1) from the current sample; later steps of the group restart from there
        if (order == 1) _groupSample = sample;
        Tensor prev = order switch
        {
            1 => FirstOrder(m0, _groupSample!, i),
            2 => SecondOrder(_groupSample!, i),
            _ => ThirdOrder(_groupSample!, i),
        };
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, IsDataPrediction ? m0 : null);
    }

    /// <summary>First order (DDIM in λ): DPM-Solver++ eq. 5 / DPM-Solver eq. 3.7.</summary>
    Tensor FirstOrder(Tensor m0, Tensor x, int i)
    {
        var (alphaS, sigmaS, lambdaS) = At(i);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        double h = lambdaT - lambdaS;
        return IsDataPrediction
            ? sigmaT / sigmaS * x - alphaT * (Math.Exp(-h) - 1) * m0
            : alphaT / alphaS * x - sigmaT * (Math.Exp(h) - 1) * m0;
    }

    /// <summary>Second order from s1 over [λ_s1, λ_t] with the intermediate point s0 (DPM-Solver-2, Algorithm 1;
    /// DPM-Solver++(2S)): D0 = m1, D1 = (m0 − m1)/r0, r0 = (λ_s0 − λ_s1)/h.</summary>
    Tensor SecondOrder(Tensor x, int i)
    {
        var (_, _, lambdaS0) = At(i);
        var (alphaS1, sigmaS1, lambdaS1) = At(i - 1);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!;
        double h = lambdaT - lambdaS1, r0 = (lambdaS0 - lambdaS1) / h;
        Tensor d0 = m1, d1 = 1 / r0 * (m0 - m1);
        bool mid = _solver == SolverType.Midpoint;
        if (IsDataPrediction)
        {
            double e = Math.Exp(-h) - 1;
            return sigmaT / sigmaS1 * x - alphaT * e * d0 + (mid ? -0.5 * alphaT * e : alphaT * (e / h + 1)) * d1;
        }
        double f = Math.Exp(h) - 1;
        return alphaT / alphaS1 * x - sigmaT * f * d0 + (mid ? -0.5 * sigmaT * f : -sigmaT * (f / h - 1)) * d1;
    }

    /// <summary>Third order from s2 over [λ_s2, λ_t] with the intermediate points s1, s0 (DPM-Solver-3, Algorithm 2):
    /// D1_0 = (m1 − m2)/r1, D1_1 = (m0 − m2)/r0; "midpoint" uses D1_1 alone, "heun" the full D1, D2 correction.</summary>
    Tensor ThirdOrder(Tensor x, int i)
    {
        var (_, _, lambdaS0) = At(i);
        var (_, _, lambdaS1) = At(i - 1);
        var (alphaS2, sigmaS2, lambdaS2) = At(i - 2);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!, m2 = _modelOutputs[^3]!;
        double h = lambdaT - lambdaS2, r0 = (lambdaS0 - lambdaS2) / h, r1 = (lambdaS1 - lambdaS2) / h;
        Tensor d0 = m2;
        Tensor d10 = 1 / r1 * (m1 - m2), d11 = 1 / r0 * (m0 - m2);
        bool mid = _solver == SolverType.Midpoint;
        if (IsDataPrediction)
        {
            double e = Math.Exp(-h) - 1;
            var baseTerms = sigmaT / sigmaS2 * x - alphaT * e * d0;
            if (mid) return baseTerms + alphaT * (e / h + 1) * d11;
            Tensor d1 = (r0 * d10 - r1 * d11) / (r0 - r1), d2 = 2 * (d11 - d10) / (r0 - r1);
            return baseTerms + alphaT * (e / h + 1) * d1 - alphaT * ((e + h) / (h * h) - 0.5) * d2;
        }
        double f = Math.Exp(h) - 1;
        var terms = alphaT / alphaS2 * x - sigmaT * f * d0;
        if (mid) return terms - sigmaT * (f / h - 1) * d11;
        Tensor e1 = (r0 * d10 - r1 * d11) / (r0 - r1), e2 = 2 * (d11 - d10) / (r0 - r1);
        return terms - sigmaT * (f / h - 1) * e1 - sigmaT * ((f - h) / (h * h) - 0.5) * e2;
    }
}

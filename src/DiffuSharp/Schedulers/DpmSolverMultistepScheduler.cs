// DPM-Solver and DPM-Solver++ multistep (orders 1-3), and their SDE variants: diffusers'
// DPMSolverMultistepScheduler. Papers: Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
// Model Sampling in Around 10 Steps" (arXiv:2206.00927, the noise-prediction solvers, algorithm_type "dpmsolver");
// Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models"
// (arXiv:2211.01095, the data-prediction solvers, "dpmsolver++", Algorithm 2 for the multistep second order); the
// SDE variants are DPM-Solver++'s §5 / Cheng Lu's "SDE-DPM-Solver++(2M)" as diffusers writes them.
// Reference: diffusers 0.27.2 src/diffusers/schedulers/scheduling_dpmsolver_multistep.py.
// Notation: step i goes from s0 = σ-table entry i to t = entry i + 1; α, σ, λ = log(α/σ) there (At(i)); h = λ_t − λ_s0;
// m0, m1, m2 = the converted model outputs of steps i, i − 1, i − 2 (x0 for ++, ε for the others).
// Deviations: "deis" as algorithm_type and logrho/bh1/bh2 as solver_type are read as dpmsolver++ / midpoint, as
// diffusers' constructor rewrites them; the learned-variance ε half is the first C of 2C channels (see the base).
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>diffusers' DPMSolverMultistepScheduler: DPM-Solver(++) multistep of order 1-3, ODE or SDE.</summary>
public sealed class DpmSolverMultistepScheduler : ExponentialIntegratorScheduler
{
    readonly AlgorithmType _algorithm;
    readonly SolverType _solver;
    readonly Tensor?[] _modelOutputs;     // converted outputs of the last solver_order steps, newest last
    int _lowerOrderNums;                  // steps taken so far, capped at solver_order (warm-up of the multistep)

    /// <summary>Builds the scheduler from a DPMSolverMultistepScheduler config.</summary>
    /// <exception cref="ArgumentException">An order outside 1-3 (1-2 for the SDE variants), or final_sigmas_type "zero"
    /// with a noise-prediction algorithm.</exception>
    public DpmSolverMultistepScheduler(SchedulerConfig config) : base(config, floorZeroSnr: true)
    {
        _algorithm = config.AlgorithmType == AlgorithmType.Deis ? AlgorithmType.DpmSolverPlusPlus : config.AlgorithmType;
        _solver = config.SolverType is SolverType.Midpoint or SolverType.Heun ? config.SolverType : SolverType.Midpoint;
        if (config.SolverOrder is < 1 or > 3)
            throw new ArgumentException($"DPMSolverMultistepScheduler: solver_order must be 1, 2 or 3, got {config.SolverOrder}");
        if (!IsDataPrediction && config.FinalSigmasType == FinalSigmasType.Zero)
            throw new ArgumentException($"DPMSolverMultistepScheduler: final_sigmas_type \"zero\" is not supported for algorithm_type \"{Spell(_algorithm)}\"; use \"sigma_min\"");
        if (config.UseKarrasSigmas && config.UseLuLambdas)
            throw new ArgumentException("DPMSolverMultistepScheduler: use_karras_sigmas and use_lu_lambdas exclude each other");
        if (IsSde && config.SolverOrder == 3)
            throw new ArgumentException($"DPMSolverMultistepScheduler: algorithm_type \"{Spell(_algorithm)}\" has orders 1 and 2, got solver_order 3");
        _modelOutputs = new Tensor?[config.SolverOrder];
    }

    bool IsDataPrediction => _algorithm is AlgorithmType.DpmSolverPlusPlus or AlgorithmType.SdeDpmSolverPlusPlus;
    bool IsSde => _algorithm is AlgorithmType.SdeDpmSolver or AlgorithmType.SdeDpmSolverPlusPlus;

    static string Spell(AlgorithmType a) => a switch
    {
        AlgorithmType.DpmSolver => "dpmsolver",
        AlgorithmType.SdeDpmSolver => "sde-dpmsolver",
        AlgorithmType.SdeDpmSolverPlusPlus => "sde-dpmsolver++",
        _ => "dpmsolver++",
    };

    /// <inheritdoc/>
    protected override double[] ComputeTimesteps(int numInferenceSteps)
    {
        int last = Config.NumTrainTimesteps - ClippedIndex();       // λ clipping drops the lowest-noise timesteps
        double[] timesteps = SpacedTimesteps(numInferenceSteps, last, Config.TimestepSpacing);
        double[] sigmas;
        if (Config.UseKarrasSigmas)
            (sigmas, timesteps) = KarrasSchedule(numInferenceSteps);
        else if (Config.UseLuLambdas)
        {
            // Lu et al. (2022): uniform in log σ between the training range (diffusers' _convert_to_lu, ρ = 1)
            var logSigmas = ScheduleMath.LogFloat32([.. TrainSigmas]);
            var lambdas = ScheduleMath.Linspace(logSigmas[^1], logSigmas[0], numInferenceSteps);
            sigmas = [.. lambdas.Select(Math.Exp)];
            timesteps = TimestepsOf(sigmas);
        }
        else
            sigmas = SigmasAt(timesteps);
        double sigmaLast = Config.FinalSigmasType == FinalSigmasType.SigmaMin ? TrainSigmas[0] : 0;
        SetSigmas([.. sigmas, sigmaLast]);
        Array.Clear(_modelOutputs);
        _lowerOrderNums = 0;
        return timesteps;
    }

    /// <summary>
    /// One DPM-Solver(++) step from <paramref name="timestep"/>. modelOutput: (B, C, H, W), or (B, 2C, H, W) with a
    /// learned variance; sample: (B, C, H, W). The SDE variants draw their noise from <paramref name="noise"/>.
    /// PredOriginalSample is the data prediction x0 for dpmsolver++ / sde-dpmsolver++ and null otherwise.
    /// </summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource noise = default)
    {
        int i = CurrentStepIndex(timestep);
        int n = Timesteps.Count;
        modelOutput = MeanPart(modelOutput, sample);

        // 1. the order of this step: warm up from order 1, and lower it at the end (fewer than 15 steps, Euler at
        //    the final step, or a final σ of 0, where a higher order would divide by an infinite h)
        bool lowerOrderFinal = i == n - 1 && (Config.EulerAtFinal || (Config.LowerOrderFinal && n < 15) || Config.FinalSigmasType == FinalSigmasType.Zero);
        bool lowerOrderSecond = i == n - 2 && Config.LowerOrderFinal && n < 15;
        int order = Config.SolverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal ? 1
                  : Config.SolverOrder == 2 || _lowerOrderNums < 2 || lowerOrderSecond ? 2 : 3;

        // 2. the model output as the solver integrates it: x0 (DPM-Solver++ eq. 3) or ε (DPM-Solver)
        Tensor m0 = ConvertModelOutput(modelOutput, sample, i);
        for (int k = 0; k < _modelOutputs.Length - 1; k++) _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[^1] = m0;

        // 3. the SDE variants' Brownian increment z ~ N(0, I)
        Tensor? z = IsSde ? noise.Draw(sample, "DPMSolverMultistepScheduler.Step") : null;

        // 4. the update from λ_s0 to λ_t
        Tensor prev = order switch
        {
            1 => FirstOrder(m0, sample, z, i),
            2 => SecondOrder(sample, z, i),
            _ => ThirdOrder(sample, i),
        };
        if (_lowerOrderNums < Config.SolverOrder) _lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerStepOutput(prev, IsDataPrediction ? m0 : null);
    }

    /// <summary>diffusers' convert_model_output: x0 for the data-prediction algorithms (thresholded when asked), ε for
    /// the noise-prediction ones (with thresholding applied to the x0 it implies).</summary>
    Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int i)
    {
        if (IsDataPrediction) return DataPrediction(modelOutput, sample, i);
        var eps = NoisePrediction(modelOutput, sample, i);
        if (!Config.Thresholding) return eps;
        var (alpha, sigma, _) = At(i);
        var x0 = ScheduleMath.DynamicThreshold((sample - sigma * eps) / alpha, Config.DynamicThresholdingRatio, Config.SampleMaxValue);
        return (sample - alpha * x0) / sigma;
    }

    /// <summary>First order: DDIM in λ (DPM-Solver++ eq. 5 / DPM-Solver eq. 3.7 with k = 1; SDE: DPM-Solver++ §5).</summary>
    Tensor FirstOrder(Tensor m0, Tensor x, Tensor? z, int i)
    {
        var (alphaS, sigmaS, lambdaS) = At(i);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        double h = lambdaT - lambdaS;
        return _algorithm switch
        {
            AlgorithmType.DpmSolverPlusPlus => sigmaT / sigmaS * x - alphaT * (Math.Exp(-h) - 1) * m0,
            AlgorithmType.DpmSolver => alphaT / alphaS * x - sigmaT * (Math.Exp(h) - 1) * m0,
            AlgorithmType.SdeDpmSolverPlusPlus => sigmaT / sigmaS * Math.Exp(-h) * x + alphaT * (1 - Math.Exp(-2 * h)) * m0
                                                  + sigmaT * Math.Sqrt(1 - Math.Exp(-2 * h)) * z!,
            _ => alphaT / alphaS * x - 2 * sigmaT * (Math.Exp(h) - 1) * m0 + sigmaT * Math.Sqrt(Math.Exp(2 * h) - 1) * z!,
        };
    }

    /// <summary>Multistep second order (DPM-Solver++ Algorithm 2; "midpoint" takes D1 at the midpoint, "heun" the
    /// trapezoid weight of DPM-Solver eq. 3.8): D0 = m0, D1 = (m0 − m1)/r0 with r0 = h_0/h.</summary>
    Tensor SecondOrder(Tensor x, Tensor? z, int i)
    {
        var (alphaS0, sigmaS0, lambdaS0) = At(i);
        var (_, _, lambdaS1) = At(i - 1);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!;
        double h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1, r0 = h0 / h;
        Tensor d0 = m0, d1 = 1 / r0 * (m0 - m1);
        bool mid = _solver == SolverType.Midpoint;
        switch (_algorithm)
        {
            case AlgorithmType.DpmSolverPlusPlus:
            {
                double e = Math.Exp(-h) - 1;
                double c1 = mid ? -0.5 * alphaT * e : alphaT * (e / h + 1);
                return sigmaT / sigmaS0 * x - alphaT * e * d0 + c1 * d1;
            }
            case AlgorithmType.DpmSolver:
            {
                double e = Math.Exp(h) - 1;
                double c1 = mid ? -0.5 * sigmaT * e : -sigmaT * (e / h - 1);
                return alphaT / alphaS0 * x - sigmaT * e * d0 + c1 * d1;
            }
            case AlgorithmType.SdeDpmSolverPlusPlus:
            {
                double e2 = 1 - Math.Exp(-2 * h);
                double c1 = mid ? 0.5 * alphaT * e2 : alphaT * (e2 / (-2 * h) + 1);
                return sigmaT / sigmaS0 * Math.Exp(-h) * x + alphaT * e2 * d0 + c1 * d1 + sigmaT * Math.Sqrt(e2) * z!;
            }
            default:
            {
                double e = Math.Exp(h) - 1;
                double c1 = mid ? -sigmaT * e : -2 * sigmaT * (e / h - 1);
                return alphaT / alphaS0 * x - 2 * sigmaT * e * d0 + c1 * d1 + sigmaT * Math.Sqrt(Math.Exp(2 * h) - 1) * z!;
            }
        }
    }

    /// <summary>Multistep third order (DPM-Solver eq. 3.9 / DPM-Solver++ in its data form): D1 and D2 are the first and
    /// second divided differences of m0, m1, m2 in λ. The SDE variants have no third order (as diffusers).</summary>
    Tensor ThirdOrder(Tensor x, int i)
    {
        var (alphaS0, sigmaS0, lambdaS0) = At(i);
        var (_, _, lambdaS1) = At(i - 1);
        var (_, _, lambdaS2) = At(i - 2);
        var (alphaT, sigmaT, lambdaT) = At(i + 1);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!, m2 = _modelOutputs[^3]!;
        double h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1, h1 = lambdaS1 - lambdaS2;
        double r0 = h0 / h, r1 = h1 / h;
        Tensor d10 = 1 / r0 * (m0 - m1), d11 = 1 / r1 * (m1 - m2);
        Tensor d1 = d10 + r0 / (r0 + r1) * (d10 - d11);
        Tensor d2 = 1 / (r0 + r1) * (d10 - d11);
        if (IsDataPrediction)
        {
            double e = Math.Exp(-h) - 1;
            return sigmaT / sigmaS0 * x - alphaT * e * m0 + alphaT * (e / h + 1) * d1 - alphaT * ((e + h) / (h * h) - 0.5) * d2;
        }
        double f = Math.Exp(h) - 1;
        return alphaT / alphaS0 * x - sigmaT * f * m0 - sigmaT * (f / h - 1) * d1 - sigmaT * ((f - h) / (h * h) - 0.5) * d2;
    }
}

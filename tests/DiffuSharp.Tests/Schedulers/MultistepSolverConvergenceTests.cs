// The solvers solve the probability-flow ODE: for Gaussian data x0 ~ N(0, s²) the exact noise prediction is
// ε*(x_t) = σ_t x_t / v_t with v_t = α_t² s² + σ_t² (the posterior mean of ε), and the ODE keeps x_t / √v_t constant,
// so from x_T the exact end point is x_T · √(v_end / v_T). First order (DDIM) converges to it as the steps grow;
// the higher-order solvers (DPM-Solver(++) 2M/3M, singlestep 2/3, DEIS 2/3, UniPC) land closer than DDIM does
// (the ordering of errors Lu et al. 2022, Zhang & Chen 2022 and Zhao et al. 2023 report). A check independent of
// diffusers: diffusers itself gives the same errors on this problem (DDIM 10 steps 25%, 100 steps 2.8%). It guards
// the accuracy a solver's order buys (one that degrades to first order fails); exact coefficients are the fixtures'.
using DiffuSharp.Schedulers;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Schedulers;

public class MultistepSolverConvergenceTests(ITestOutputHelper output)
{
    const double S = 0.5;        // data standard deviation
    // DPM-Solver ends at σ_min here (as DEIS and UniPC always do): a last jump to σ = 0 returns the posterior mean
    // E[x0 | x_t], which is not the ODE's end point
    const string SigmaMin = """{"final_sigmas_type": "sigma_min"}""";
    const string FirstOrder = """{"solver_order": 1, "final_sigmas_type": "sigma_min"}""";

    /// <summary>|x_end/x_T − exact| / exact after a full run of <paramref name="steps"/> steps.</summary>
    static double RunError(string className, string json, int steps)
    {
        // "leading" spacing with offset 1 ends at t = 1, so no single step spans most of the λ range
        json = json.TrimEnd('}').TrimEnd() + (json.Trim() == "{}" ? "" : ",") + """ "timestep_spacing": "leading", "steps_offset": 1}""";
        var s = SchedulerFactory.Create(SchedulerConfig.FromJson(json, "test", className));
        s.SetTimesteps(steps);
        var x = Tensor.Ones(1, 1, 2, 2);
        foreach (double t in s.Timesteps)
        {
            double ac = s.AlphasCumprod[(int)t];
            double v = ac * S * S + (1 - ac);
            var eps = x * (Math.Sqrt(1 - ac) / v);                    // ε*(x_t) = σ_t x_t / v_t
            x = s.Step(eps, t, x).PrevSample;
        }
        static double V(double sigma) => (S * S + sigma * sigma) / (sigma * sigma + 1);   // v in terms of σ = σ'/α
        double exact = Math.Sqrt(V(s.Sigmas![^1]) / V(s.Sigmas[0]));
        return Math.Abs(x.ToArray()[0] - exact) / exact;
    }

    public static TheoryData<string, string, string> Solvers => new()
    {
        { "dpm++2m", "DPMSolverMultistepScheduler", SigmaMin },
        { "dpm++3m", "DPMSolverMultistepScheduler", """{"solver_order": 3, "final_sigmas_type": "sigma_min"}""" },
        { "dpm2m", "DPMSolverMultistepScheduler", """{"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}""" },
        { "dpm++2m heun", "DPMSolverMultistepScheduler", """{"solver_type": "heun", "final_sigmas_type": "sigma_min"}""" },
        { "dpm_single2", "DPMSolverSinglestepScheduler", SigmaMin },
        { "dpm_single3", "DPMSolverSinglestepScheduler", """{"solver_order": 3, "final_sigmas_type": "sigma_min"}""" },
        { "deis2", "DEISMultistepScheduler", "{}" },
        { "deis3", "DEISMultistepScheduler", """{"solver_order": 3}""" },
        { "unipc bh2", "UniPCMultistepScheduler", "{}" },
        { "unipc3 bh1", "UniPCMultistepScheduler", """{"solver_order": 3, "solver_type": "bh1"}""" },
        { "unipc bh2 eps", "UniPCMultistepScheduler", """{"predict_x0": false}""" },
    };

    [Theory, MemberData(nameof(Solvers))]
    public void Higher_order_solvers_land_closer_to_the_exact_ODE_solution_than_DDIM(string name, string className, string json)
    {
        // at 100 steps (h ≈ 0.09 in λ) the higher orders are clearly ahead; at 10 steps they are still ahead.
        // (In between, DPM-Solver++ multistep without lower_order_final can trail DDIM: its last steps extrapolate
        // over h > 1.)
        foreach (var (steps, factor) in new[] { (10, 1.0), (100, 1.4) })
        {
            double first = RunError("DPMSolverMultistepScheduler", FirstOrder, steps);
            double ours = RunError(className, json, steps);
            output.WriteLine($"{name,-14} {steps} steps: rel error {ours:E2} (first order {first:E2})");
            Assert.True(ours * factor < first, $"{name} at {steps} steps: {ours:E2} vs first order {first:E2}");
        }
    }

    [Fact]
    public void First_order_converges_to_the_exact_ODE_solution()            // error ∝ 1/steps: 10× the steps, ~9× less error
    {
        double e10 = RunError("DPMSolverMultistepScheduler", FirstOrder, 10);
        double e100 = RunError("DPMSolverMultistepScheduler", FirstOrder, 100);
        output.WriteLine($"first order: 10 steps {e10:E2}, 100 steps {e100:E2}");
        Assert.True(e100 < 0.05 && e100 < e10 / 5, $"10 steps {e10:E2}, 100 steps {e100:E2}");
    }
}

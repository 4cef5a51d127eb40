// Every diffusers fixture of the exponential-integrator solvers replays within 1e-5 relative: DPM-Solver(++)
// multistep (sched_dpmpp*, sched_dpm[0-9]*, sched_sde_dpm*), DPM-Solver singlestep (sched_dpm_single*), DEIS
// (sched_deis*) and UniPC (sched_unipc*): timesteps equal, σ table, every step's model input and prev_sample,
// add_noise. The upstream files (7 cases) and make_scheduler_fixtures_multistep.py's (49 cases) alike.
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Schedulers;

public class MultistepSolverParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> DpmMultistepCases => SchedulerFixture.Cases("dpmpp", "dpm2", "dpm3", "sde_dpm");
    public static IEnumerable<object[]> DpmSinglestepCases => SchedulerFixture.Cases("dpm_single");
    public static IEnumerable<object[]> DeisCases => SchedulerFixture.Cases("deis");
    public static IEnumerable<object[]> UniPcCases => SchedulerFixture.Cases("unipc");

    [Theory, MemberData(nameof(DpmMultistepCases))]
    public void DpmSolverMultistep_replays_diffusers(string caseName) => SchedulerFixture.AssertReplays(caseName, output);

    [Theory, MemberData(nameof(DpmSinglestepCases))]
    public void DpmSolverSinglestep_replays_diffusers(string caseName) => SchedulerFixture.AssertReplays(caseName, output);

    [Theory, MemberData(nameof(DeisCases))]
    public void Deis_replays_diffusers(string caseName) => SchedulerFixture.AssertReplays(caseName, output);

    [Theory, MemberData(nameof(UniPcCases))]
    public void UniPc_replays_diffusers(string caseName) => SchedulerFixture.AssertReplays(caseName, output);
}

// Every diffusers scheduler fixture of the DDPM / DDIM / PNDM / LMS / Euler / Heun / KDPM2 families replays within
// 1e-5 relative: timesteps equal, tables, every step's model input, prev_sample and pred_original_sample, add_noise.
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Schedulers;

public class DiffusersSchedulerParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases =>
        SchedulerFixture.Cases("ddpm_", "ddim_", "pndm_", "lms_", "euler_", "heun_", "kdpm2_");

    [Theory, MemberData(nameof(Cases))]
    public void Replays_diffusers_fixture(string caseName) => SchedulerFixture.AssertReplays(caseName, output);
}

using DiffuSharp.Diffusion;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

public class ShortScheduleTests
{
    [Theory, InlineData(20), InlineData(10), InlineData(1)]
    public void Linear_schedule_too_short_for_beta_below_one_is_refused_with_the_reason(int steps)
    {
        var ex = Assert.Throws<ArgumentException>(() => NoiseSchedule.GetNamedBetaSchedule(BetaSchedule.Linear, steps));
        Assert.Contains("more than 20 diffusion steps", ex.Message);
    }

    [Fact]
    public void Linear_schedule_of_21_steps_is_finite_and_below_one()
    {
        var betas = NoiseSchedule.GetNamedBetaSchedule(BetaSchedule.Linear, 21);
        Assert.All(betas, b => Assert.InRange(b, 1e-6, 0.9999));
    }
}

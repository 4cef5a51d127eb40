// Timestep samplers: importance weights keep the loss unbiased, the loss-aware sampler stays uniform until warm
// and then follows √E[L²], and draws are reproducible from the Rng.
using DiffuSharp.Diffusion;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

public class ScheduleSamplerTests
{
    [Fact]
    public void Uniform_sampler_draws_every_timestep_with_weight_one()
    {
        var s = ScheduleSampler.Create("uniform", DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 10, NoiseSchedule: "cosine")));
        var (t, w) = s.Sample(20000, new Rng(1));
        Assert.All(w, v => Assert.Equal(1f, v));
        var counts = new int[10];
        foreach (int ti in t) counts[ti]++;
        Assert.All(counts, c => Assert.InRange(c, 1800, 2200));      // 2000 ± 4.7σ (σ = 42)
        var (t2, _) = s.Sample(20000, new Rng(1));
        Assert.Equal(t, t2);
    }

    [Fact]
    public void Importance_weights_are_one_over_T_p()
    {
        var s = new LossSecondMomentResampler(4, historyPerTerm: 1, uniformProb: 0);
        s.UpdateWithAllLosses([0, 1, 2, 3], [1.0, 1.0, 2.0, 4.0]);       // p = [1, 1, 2, 4] / 8
        Assert.True(s.WarmedUp);
        Assert.Equal([0.125, 0.125, 0.25, 0.5], s.Weights());
        var (t, w) = s.Sample(4000, new Rng(2));
        for (int i = 0; i < t.Length; i++) Assert.Equal((float)(1.0 / (4 * s.Weights()[t[i]])), w[i]);
        // E[w · L_t] under p equals the uniform mean of L: Σ p_t · 1/(T p_t) · L_t = mean(L).
        double est = 0;
        double[] loss = [1, 1, 2, 4];
        for (int i = 0; i < t.Length; i++) est += w[i] * loss[t[i]];
        Assert.InRange(est / t.Length, 2.0 * 0.95, 2.0 * 1.05);
    }

    [Fact]
    public void Loss_aware_sampler_is_uniform_until_warm_and_keeps_a_uniform_share()
    {
        var s = new LossSecondMomentResampler(3, historyPerTerm: 2, uniformProb: 0.3);
        s.UpdateWithLocalLosses([0, 0, 1, 1, 2], [1f, 1f, 1f, 1f, 5f]);
        Assert.False(s.WarmedUp);
        Assert.Equal([1.0, 1.0, 1.0], s.Weights());
        s.UpdateWithLocalLosses([2, 2], [0f, 0f]);                       // the 5 is shifted out: history of t = 2 is [0, 0]
        Assert.True(s.WarmedUp);
        var w = s.Weights();
        Assert.Equal(0.7 * 0.5 + 0.1, w[0], 1e-15);
        Assert.Equal(0.1, w[2], 1e-15);                                  // zero loss still gets uniformProb / T
        var state = s.GetState();
        var r = new LossSecondMomentResampler(3, historyPerTerm: 2, uniformProb: 0.3);
        r.SetState(state);
        Assert.Equal(w, r.Weights());
        Assert.Throws<ArgumentException>(() => new LossSecondMomentResampler(4, historyPerTerm: 2).SetState(state));
    }

    [Fact]
    public void Unknown_sampler_names_and_bad_arguments_are_refused()
    {
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 10, NoiseSchedule: "cosine"));
        Assert.Contains("\"loss-second-moment\"", Assert.Throws<ArgumentException>(() => ScheduleSampler.Create("importance", d)).Message);
        Assert.IsType<LossSecondMomentResampler>(ScheduleSampler.Create("loss-second-moment", d));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UniformSampler(10).Sample(0, new Rng(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossSecondMomentResampler(10).UpdateWithAllLosses([10], [1.0]));
    }
}

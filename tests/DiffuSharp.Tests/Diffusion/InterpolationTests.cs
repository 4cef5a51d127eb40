// Interpolation (seed 004: diffuse both images to step t with one noise, mix, denoise) and trajectory helpers.
using DiffuSharp.Diffusion;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

public class InterpolationTests
{
    static readonly DiffusionModel Model = (x, ts) => x.Tanh() * 0.5;

    [Fact]
    public void Lambda_zero_is_image_a_denoised_from_its_own_latent()
    {
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 50));
        var xa = Tensor.Rand([2, 1, 4, 4], new Rng(1), -1, 1);
        var xb = Tensor.Rand([2, 1, 4, 4], new Rng(2), -1, 1);
        var eps = Tensor.RandN(xa.Shape, new Rng(3));
        int t = 20;
        var mixed = Interpolation.Interpolate(d, Model, xa, xb, 0.0, t, new Rng(4), eps, InterpolationSampler.Ddim);
        var direct = d.DdimSampleLoop(Model, xa.Shape, null, d.QSample(xa, GaussianDiffusion.Fill(2, t), eps), startStep: t);
        Assert.Equal(direct.ToArray(), mixed.ToArray());
        // The DDPM path draws its step noise from the rng: same seed, same bits; 21 steps from t = 20.
        var steps = Interpolation.InterpolateProgressive(d, Model, xa, xb, 0.5, t, new Rng(5), eps).ToList();
        Assert.Equal(21, steps.Count);
        Assert.Equal(Enumerable.Range(0, 21).Reverse(), steps.Select(s => s.Timestep));
        Assert.Equal(steps[^1].Sample.ToArray(), Interpolation.Interpolate(d, Model, xa, xb, 0.5, t, new Rng(5), eps).ToArray());
    }

    [Fact]
    public void Latents_mix_linearly_and_bad_arguments_are_refused()
    {
        var a = Tensor.FromArray([0f, 2f], 1, 2);
        var b = Tensor.FromArray([4f, 2f], 1, 2);
        Assert.Equal([1f, 2f], Interpolation.MixLatents(a, b, 0.25).ToArray());
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 10, NoiseSchedule: "cosine"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Interpolation.Interpolate(d, Model, a.Reshape(1, 1, 2), b.Reshape(1, 1, 2), 1.5, 3, new Rng(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Interpolation.Interpolate(d, Model, a.Reshape(1, 1, 2), b.Reshape(1, 1, 2), 0.5, 10, new Rng(1)));
        Assert.Throws<ArgumentException>(() => Interpolation.Interpolate(d, Model, a.Reshape(1, 1, 2), Tensor.Zeros(1, 2, 1), 0.5, 3, new Rng(1)));
    }

    [Fact]
    public void Slerp_follows_the_arc_per_sample_and_keeps_the_ends()
    {
        // Sample 0: orthogonal unit vectors, the midpoint is (√½, √½) with norm 1 (a linear mix would have norm √½).
        // Sample 1: parallel vectors, where the arc is undefined: a linear mix.
        var a = Tensor.FromArray([1f, 0f, 1f, 1f], 2, 2);
        var b = Tensor.FromArray([0f, 1f, 2f, 2f], 2, 2);
        var mid = Interpolation.SlerpLatents(a, b, 0.5).ToArray();
        Assert.Equal(Math.Sqrt(0.5), mid[0], 6);
        Assert.Equal(Math.Sqrt(0.5), mid[1], 6);
        Assert.Equal([1.5f, 1.5f], mid[2..]);
        var third = Interpolation.SlerpLatents(a, b, 1.0 / 3).ToArray();
        Assert.Equal(Math.Cos(Math.PI / 6), third[0], 6);                    // 30° along the quarter circle
        Assert.Equal(a.ToArray(), Interpolation.SlerpLatents(a, b, 0).ToArray());
        var end = Interpolation.SlerpLatents(a, b, 1).ToArray();
        for (int i = 0; i < 4; i++) Assert.Equal(b.ToArray()[i], end[i], 6);
        Assert.Throws<ArgumentException>(() => Interpolation.SlerpLatents(a, Tensor.Zeros(2, 3), 0.5));
    }

    [Fact]
    public void Trajectory_repeats_noise_across_the_batch_for_the_first_steps_and_thins()
    {
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 20, NoiseSchedule: "cosine"));
        var steps = Trajectory.PSampleLoopTrajectory(d, Model, [3, 1, 4, 4], new Rng(6), repeatNoiseSteps: 5).ToList();
        Assert.Equal(20, steps.Count);
        // Same start, same noise for 5 steps, and a deterministic model: the batch is identical until step 15.
        var early = steps[4].Sample.ToArray();
        Assert.Equal(early[..16], early[16..32]);
        var late = steps[^1].Sample.ToArray();
        Assert.NotEqual(late[..16], late[16..32]);
        Assert.Equal([19, 14, 9, 4, 0], steps.Every(5).Select(s => s.Timestep));
        Assert.Equal([19, 0], steps.Every(100).Select(s => s.Timestep));
    }
}

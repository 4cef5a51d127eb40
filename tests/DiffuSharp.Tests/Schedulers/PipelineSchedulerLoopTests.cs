// The denoising loops of diffusers' own Stable Diffusion pipelines, scheduler side only: the recorded UNet outputs
// are fed back (classifier-free guidance 7.5 applied as the pipeline does), and every step's UNet input and latents
// are compared with the run. Covers what a bare scheduler fixture does not: the pipeline's from_config of the
// folder's PNDM config, img2img's strength (the last 6 of 10 DDIM steps, add_noise at the first of them),
// inpainting's per-step add_noise at the next timestep with set_begin_index, and PNDM's 11 calls for 10 steps.
// Reference: Fixtures/diffusers/pipelines/*.safetensors (diffusers 0.27.2 runs; README.upstream.md, "Pipeline
// fixtures").
using DiffuSharp.IO;
using DiffuSharp.Schedulers;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Schedulers;

public class PipelineSchedulerLoopTests(ITestOutputHelper output)
{
    const double GuidanceScale = 7.5, VaeScalingFactor = 0.18215, Tolerance = 1e-5;

    sealed class Run(string name)
    {
        public SafeTensorsFile File { get; } = SafeTensorsFile.Open(Path.Combine(TestPaths.Diffusers, "pipelines", name + ".safetensors"));
        public Tensor T(string n) => Tensor.FromArray(File.ReadFloat32(n), [.. File.Info(n).Shape.Select(d => (int)d)]);
        public Scheduler Scheduler() => SchedulerFactory.Create(
            SchedulerConfig.FromJson(File.Metadata["scheduler_config"], File.SourceName, File.Metadata["scheduler_class"]));
    }

    void Check(string what, Tensor ours, Tensor reference)
    {
        var r = SchedulerReplay.Measure(what, ours.ToArray().Select(v => (double)v).ToArray(), reference.ToArray().Select(v => (double)v).ToArray(), Tolerance);
        output.WriteLine($"{what,-28} rel {r.RelErr:E2}");
        Assert.True(r.Passed, $"{what}: rel {r.RelErr:E2}");
    }

    // ε_u + w (ε_c − ε_u) from the [uncond; cond] UNet batch
    static Tensor Guided(Tensor noisePred)
    {
        var halves = noisePred.Chunk(2, 0);
        return halves[0] + GuidanceScale * (halves[1] - halves[0]);
    }

    [Fact]
    public void Img2img_ddim_strength_06()
    {
        var run = new Run("sd_img2img");
        var sched = run.Scheduler();
        sched.SetTimesteps(10);
        int tStart = 10 - (int)(10 * 0.6);
        sched.SetBeginIndex(tStart * sched.Order);
        var timesteps = sched.Timesteps.Skip(tStart).ToArray();
        Assert.Equal(run.File.ReadInt64("intermediate.timesteps").Select(t => (double)t), timesteps);
        var initLatents = run.T("intermediate.vae_posterior_sample.0") * VaeScalingFactor;
        var latents = sched.AddNoise(initLatents, run.T("rng.01"), [timesteps[0]]);
        for (int i = 0; i < timesteps.Length; i++)
        {
            string p = $"step{i:D2}.";
            Check(p + "unet_input", sched.ScaleModelInput(Tensor.Concat([latents, latents], 0), timesteps[i]), run.T(p + "unet_input"));
            latents = sched.Step(Guided(run.T(p + "noise_pred")), timesteps[i], latents).PrevSample;
            Check(p + "latents", latents, run.T(p + "latents"));
        }
        Check("output.latents", latents, run.T("output.latents"));
    }

    [Fact]
    public void Inpaint_4ch_euler_blends_with_add_noise_at_the_next_timestep()
    {
        var run = new Run("sd_inpaint_legacy_4ch");
        var sched = run.Scheduler();
        Assert.IsType<EulerDiscreteScheduler>(sched);
        sched.SetTimesteps(10);
        sched.SetBeginIndex(0);                                   // strength 1: t_start = 0
        var ts = sched.Timesteps.ToArray();
        Assert.Equal(run.File.ReadFloat32("intermediate.timesteps").Select(t => (double)t), ts);
        var imageLatents = run.T("intermediate.vae_posterior_sample.0") * VaeScalingFactor;
        var noise = run.T("rng.01");
        var mask = run.T("intermediate.mask_latents").Chunk(2, 0)[0];     // (1, 1, h, w), the first CFG half
        var latents = noise * sched.InitNoiseSigma;
        for (int i = 0; i < ts.Length; i++)
        {
            string p = $"step{i:D2}.";
            Check(p + "unet_input", sched.ScaleModelInput(Tensor.Concat([latents, latents], 0), ts[i]), run.T(p + "unet_input"));
            latents = sched.Step(Guided(run.T(p + "noise_pred")), ts[i], latents, run.T($"rng.{i + 3:D2}")).PrevSample;
            var proper = i < ts.Length - 1 ? sched.AddNoise(imageLatents, noise, [ts[i + 1]]) : imageLatents;
            latents = (1 - mask) * proper + mask * latents;
            Check(p + "latents", latents, run.T(p + "latents"));
        }
        Check("output.latents", latents, run.T("output.latents"));
    }

    [Fact]
    public void Controlnet_run_with_the_folders_pndm_takes_11_calls()
    {
        var run = new Run("sd_controlnet");
        var sched = run.Scheduler();
        Assert.IsType<PndmScheduler>(sched);
        sched.SetTimesteps(10);
        Assert.Equal(run.File.ReadInt64("intermediate.timesteps").Select(t => (double)t), sched.Timesteps);
        var latents = run.T("input.latents") * sched.InitNoiseSigma;
        for (int i = 0; i < sched.Timesteps.Count; i++)
        {
            string p = $"step{i:D2}.";
            double t = sched.Timesteps[i];
            Check(p + "unet_input", sched.ScaleModelInput(Tensor.Concat([latents, latents], 0), t), run.T(p + "unet_input"));
            latents = sched.Step(Guided(run.T(p + "noise_pred")), t, latents).PrevSample;
            Check(p + "latents", latents, run.T(p + "latents"));
        }
        Check("output.latents", latents, run.T("output.latents"));
    }
}

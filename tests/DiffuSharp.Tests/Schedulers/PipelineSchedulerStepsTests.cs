// DPM-Solver++ 2M inside diffusers' own Stable Diffusion loops (Fixtures/diffusers/pipeline_steps_*, cut from the
// pipeline runs by make_pipeline_scheduler_steps.py): the scheduler built from the pipeline folder's config
// (PNDM's, with keys of other classes; plain and Karras), fed the recorded UNet outputs with classifier-free
// guidance, gives every step's latents within 1e-5 relative.
using System.Text.Json;
using DiffuSharp.IO;
using DiffuSharp.Schedulers;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Schedulers;

public class PipelineSchedulerStepsTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("sd_txt2img")]
    [InlineData("sd_multicontrolnet")]
    public void DpmSolver_in_a_diffusers_pipeline_loop(string run)
    {
        var file = SafeTensorsFile.Open(Path.Combine(TestPaths.Diffusers, $"pipeline_steps_{run}.safetensors"));
        var config = SchedulerConfig.FromJson(file.Metadata["scheduler_config"], run, file.Metadata["scheduler_class"]);
        var scheduler = SchedulerFactory.Create(config);
        double guidance = JsonDocument.Parse(file.Metadata["call"]).RootElement.GetProperty("guidance_scale").GetDouble();
        Tensor Load(string name) => Tensor.FromArray(file.ReadFloat32(name), [.. file.Info(name).Shape.Select(d => (int)d)]);

        scheduler.SetTimesteps(10);
        Assert.Equal(file.ReadInt64("intermediate.timesteps").Select(t => (double)t), scheduler.Timesteps);
        var latents = Load("input.latents") * scheduler.InitNoiseSigma;
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            var noisePred = Load($"step{i:D2}.noise_pred");                       // (2, 4, 8, 8): [uncond; cond]
            Tensor uncond = noisePred.Slice(0, 0, 1), cond = noisePred.Slice(0, 1, 1);
            var guided = uncond + guidance * (cond - uncond);                     // as the pipeline, in float32
            latents = scheduler.Step(guided, scheduler.Timesteps[i], latents).PrevSample;
            var r = SchedulerReplay.Measure($"step{i:D2}.latents", [.. latents.ToArray().Select(v => (double)v)],
                [.. file.ReadFloat32($"step{i:D2}.latents").Select(v => (double)v)], 1e-5);
            output.WriteLine($"{r.Tensor} rel {r.RelErr:E2}");
            Assert.True(r.Passed, $"{run} {r.Tensor}: rel {r.RelErr:E2}");
        }
    }
}

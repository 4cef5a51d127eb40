// diffusers' DDPMPipeline loop (diffusers 0.27.2, pipelines/ddpm/pipeline_ddpm.py) over any scheduler: x = x_T ·
// init_noise_sigma; for each t of set_timesteps(n): out = unet(scale_model_input(x, t), t); x = step(out, t, x).
// For DDPM and DDIM (init_noise_sigma 1, scale_model_input the identity) this is DDPMPipeline's loop exactly; the
// σ-based schedulers need the scaling, as diffusers' other pipelines apply it. Stochastic steps take their noise
// from stepNoise(i), so a run can replay noise recorded elsewhere (scripts/compare_ddpm_pipeline.py does).
// The image is returned in the model's range ([-1, 1] for a DDPM-trained UNet); DDPMPipeline's output is
// (x / 2 + 0.5).clamp(0, 1).
using DiffuSharp.Diffusion;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Pipelines;

/// <summary>diffusers' DDPMPipeline loop over any scheduler and a <see cref="UNet2DModel"/>, with the input scaling
/// σ-based schedulers need; the image comes back in the model's range.</summary>
public static class DdpmPipeline
{
    /// <summary>Denoises <paramref name="noise"/> (B, C, H, W) over <paramref name="steps"/> timesteps of
    /// <paramref name="scheduler"/>. labels: (B) class labels for a UNet with num_class_embeds, else null.
    /// onStep(i) is called after step i.</summary>
    public static Tensor Sample(UNet2DModel unet, Scheduler scheduler, Tensor noise, int steps, Func<int, NoiseSource> stepNoise,
        int[]? labels = null, Action<int>? onStep = null)
    {
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(noise);
        int batch = noise.Dim(0);
        scheduler.SetTimesteps(steps);
        scheduler.SetBeginIndex(0);
        Tensor x;
        using (Tensor.NoGrad()) x = noise.Detach() * scheduler.InitNoiseSigma;
        var timesteps = scheduler.Timesteps.ToArray();
        for (int i = 0; i < timesteps.Length; i++)
        {
            double t = timesteps[i];
            using (Tensor.NoGrad())
            {
                Tensor output;
                using (var scope = TensorScope.Begin())
                {
                    var input = scheduler.ScaleModelInput(x, t);
                    output = scope.Keep(unet.Forward(input, Tensor.Full([batch], (float)t), labels));
                }
                x = scheduler.Step(output, t, x, stepNoise(i)).PrevSample;
            }
            onStep?.Invoke(i);
        }
        return x;
    }
}

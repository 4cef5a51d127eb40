// The denoising loop of diffusers' pipelines, for any Scheduler and any DiffusionModel: x_T = noise · init_noise_sigma;
// for each t: out = model(scale_model_input(x, t), t); x = step(out, t, x).prev_sample. Reference: diffusers 0.27.2,
// pipelines/ddpm/pipeline_ddpm.py and the Stable Diffusion pipelines' loops.
// Memory: each model call runs in its own TensorScope (its activations go back to the pool) and only its output
// leaves it; the scheduler's arithmetic is GC-owned, because multistep schedulers keep earlier model outputs.
using DiffuSharp.Diffusion;

namespace DiffuSharp.Schedulers;

/// <summary>One step of a scheduler loop: the step's index and timestep, x after it, and the x0 prediction
/// (null where the scheduler computes none).</summary>
public sealed record SchedulerSample(int Index, double Timestep, Tensor Sample, Tensor? PredOriginalSample);

/// <summary>The denoising loop of diffusers' pipelines for any <see cref="Scheduler"/> and
/// <see cref="DiffusionModel"/>: x_T = noise · init_noise_sigma, then for each timestep model(scale_model_input(x, t), t)
/// and x = step(...).prev_sample.</summary>
public static class SchedulerSampling
{
    /// <summary>
    /// Runs <paramref name="scheduler"/> over <paramref name="numInferenceSteps"/> from <paramref name="noise"/> (unit
    /// Gaussian, (B, C, H, W); multiplied by InitNoiseSigma here) and yields every step. The model is called with the
    /// scaled input and a (B) tensor of timesteps × <paramref name="timestepScale"/> (improved-diffusion models with
    /// rescale_timesteps see t·1000/T). A model that returns 2C channels (a learned variance) gives all of them to a
    /// scheduler whose variance_type is learned / learned_range, and its ε half (the first C) to the others.
    /// Stochastic schedulers draw from <paramref name="stepNoise"/>.
    /// </summary>
    public static IEnumerable<SchedulerSample> SampleProgressive(Scheduler scheduler, DiffusionModel model, Tensor noise,
        int numInferenceSteps, NoiseSource stepNoise = default, double timestepScale = 1.0)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(noise);
        if (noise.Rank < 2) throw new ArgumentException($"noise must be (B, C, …), got {ShapeUtil.Format(noise.ShapeSpan)}", nameof(noise));
        scheduler.SetTimesteps(numInferenceSteps);
        // The run starts at the first timestep. diffusers' pipelines leave the index to be found from the first
        // timestep, which picks its second occurrence when it repeats (Karras σ on a schedule whose ᾱ_T is tiny, such
        // as the cosine one, maps several σ to t = T − 1) and then runs out of timesteps before the end.
        scheduler.SetBeginIndex(0);
        return Loop(scheduler, model, noise.Detach(), stepNoise, timestepScale);
    }

    /// <summary>The final sample of <see cref="SampleProgressive"/>.</summary>
    public static Tensor Sample(Scheduler scheduler, DiffusionModel model, Tensor noise, int numInferenceSteps,
        NoiseSource stepNoise = default, double timestepScale = 1.0)
    {
        Tensor? last = null;
        foreach (var s in SampleProgressive(scheduler, model, noise, numInferenceSteps, stepNoise, timestepScale)) last = s.Sample;
        return last ?? throw new InvalidOperationException("the scheduler gave no timesteps");
    }

    static IEnumerable<SchedulerSample> Loop(Scheduler scheduler, DiffusionModel model, Tensor noise, NoiseSource stepNoise, double timestepScale)
    {
        int batch = noise.Dim(0), channels = noise.Dim(1);
        // a learned variance goes to the schedulers that read it (DDPM, DPM-Solver split it themselves); the others get ε
        bool keepVariance = scheduler.Config.VarianceType is VarianceType.Learned or VarianceType.LearnedRange
            && SchedulerKeys.ClassReads(scheduler.Config.ClassName, "variance_type");
        Tensor x;
        using (Tensor.NoGrad()) x = noise * scheduler.InitNoiseSigma;
        var timesteps = scheduler.Timesteps.ToArray();        // the list Heun/KDPM2 repeat entries of; fixed for the run
        for (int i = 0; i < timesteps.Length; i++)
        {
            double t = timesteps[i];
            SchedulerStepOutput step;
            using (Tensor.NoGrad())
            {
                Tensor output;
                using (var scope = TensorScope.Begin())
                {
                    var input = scheduler.ScaleModelInput(x, t);
                    var tt = Tensor.Full([batch], (float)(t * timestepScale));
                    var y = model(input, tt);                                       // (B, C or 2C, H, W)
                    if (y.Dim(0) != batch || (y.Dim(1) != channels && y.Dim(1) != 2 * channels))
                        throw new InvalidOperationException($"the model returned {ShapeUtil.Format(y.ShapeSpan)} for an input of {ShapeUtil.Format(input.ShapeSpan)}");
                    if (y.Dim(1) == 2 * channels && !keepVariance) y = y.Slice(1, 0, channels).Contiguous();   // ε half
                    output = scope.Keep(y);
                }
                step = scheduler.Step(output, t, x, stepNoise);
            }
            x = step.PrevSample;
            yield return new SchedulerSample(i, t, x, step.PredOriginalSample);
        }
    }
}

// What the trainers that keep every parameter in one flat buffer (FlatParameters: DDPM, VAE, latent, ControlNet, and
// improved-diffusion's Trainer for its weights) share around a step: a non-finite loss or gradient norm stops the step
// before anything changed; the global gradient norm is clipped and AdamW steps at the step's learning rate; the EMA
// rate carries diffusers' warm-up cap; weights come out of the flat buffer (or an EMA's copy of it) in parameter order;
// a save first checks that nothing it would write is NaN or ±∞; a checkpoint's RNG states go out and come back by name.
using DiffuSharp.NN;

namespace DiffuSharp.Training;

internal static class FlatTraining
{
    /// <summary>Throws NonFiniteTrainingException naming step <paramref name="stepsDone"/> + 1 when the loss is not
    /// finite (nothing has been updated yet). <paramref name="who"/> prefixes the message ("train-vae: "), the hint
    /// ends it.</summary>
    public static void CheckLoss(double loss, long stepsDone, string who, string hint)
    {
        if (!double.IsFinite(loss))
            throw new NonFiniteTrainingException(stepsDone + 1, $"{who}step {stepsDone + 1}: the loss is {Finite.Describe(loss)}; nothing was updated ({hint})");
    }

    /// <summary>Clips the global gradient norm to <paramref name="gradClip"/> (≤ 0: only measures it), throws
    /// NonFiniteTrainingException when it is not finite (nothing updated), then takes an AdamW step at
    /// <paramref name="lr"/>. Returns the norm before clipping.</summary>
    public static double ClipAndStep(AdamW optimizer, double gradClip, double lr, long stepsDone, string who)
    {
        double norm = GradClip.ClipGlobalNorm(optimizer.Parameters, gradClip > 0 ? gradClip : double.PositiveInfinity);
        if (!double.IsFinite(norm))
            throw new NonFiniteTrainingException(stepsDone + 1, $"{who}step {stepsDone + 1}: the gradient norm is {Finite.Describe(norm)}; nothing was updated");
        optimizer.Lr = lr;
        optimizer.Step();
        return norm;
    }

    /// <summary>The rest of a step from its loss (the latent and ControlNet trainers'): refuse a non-finite loss, back-propagate,
    /// <see cref="ClipAndStep"/>, update the EMA at <see cref="EmaRate"/>, zero <paramref name="trained"/>'s gradients.
    /// Returns the gradient norm before clipping; throws NonFiniteTrainingException with nothing updated.</summary>
    public static double Finish(Tensor loss, double lossValue, long stepsDone, string who, AdamW optimizer, double gradClip, double lr,
        Ema? ema, Module trained)
    {
        CheckLoss(lossValue, stepsDone, who, "lower --lr, or set --grad-clip");
        loss.Backward();
        double gradNorm = ClipAndStep(optimizer, gradClip, lr, stepsDone, who);
        ema?.Update(EmaRate(ema, stepsDone));
        trained.ZeroGrad();
        return gradNorm;
    }

    /// <summary>The EMA rate of the update after <paramref name="stepsDone"/> completed steps: min(rate, (1 + step)/(10 + step))
    /// (diffusers' EMAModel warm-up); 0 without an EMA.</summary>
    public static double EmaRate(Ema? ema, long stepsDone) => Math.Min(ema?.Rate ?? 0, (1.0 + stepsDone) / (10.0 + stepsDone));

    /// <summary>The live weights (<paramref name="flat"/>), or <paramref name="ema"/>'s, as (name, shape, values) in
    /// <paramref name="model"/>'s parameter order.</summary>
    public static IEnumerable<(string Name, int[] Shape, float[] Data)> Weights(Module model, float[] flat, Ema? ema)
    {
        var values = ema is null ? flat : ema.Shadow[0].ToArray();
        int at = 0;
        foreach (var (name, p) in model.NamedParameters())
        {
            yield return (name, p.Shape, values.AsSpan(at, p.Count).ToArray());
            at += p.Count;
        }
    }

    /// <summary>Throws NonFiniteTrainingException when a live weight or an EMA value is not finite: never save those.</summary>
    public static void CheckFinite(float[] flat, Ema? ema, long step, string who)
    {
        if (Finite.FirstNonFinite(flat) is var i and >= 0) throw new NonFiniteTrainingException(step, $"{who}weight {i} is not finite; not saving");
        if (ema is not null && Finite.FirstNonFinite(ema.Shadow[0].ToArray()) is var j and >= 0) throw new NonFiniteTrainingException(step, $"{who}EMA value {j} is not finite; not saving");
    }

    /// <summary>The state of each named RNG, for a checkpoint's trainer.json.</summary>
    public static Dictionary<string, RngState> States(IEnumerable<(string Name, Rng Rng)> rngs)
        => rngs.ToDictionary(r => r.Name, r => r.Rng.GetState());

    /// <summary>Sets each named RNG from <paramref name="state"/>; a negative step or a missing RNG is an
    /// InvalidDataException.</summary>
    public static void Restore(TrainerState state, IEnumerable<(string Name, Rng Rng)> rngs)
    {
        if (state.Step < 0) throw new InvalidDataException($"trainer state: negative step {state.Step}");
        foreach (var (name, rng) in rngs)
            rng.SetState(state.Rngs.TryGetValue(name, out var s) ? s : throw new InvalidDataException($"trainer state lacks the '{name}' RNG"));
    }
}

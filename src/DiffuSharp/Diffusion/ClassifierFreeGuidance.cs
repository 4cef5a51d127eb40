// Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", eq. 6; in the form GLIDE,
// Nichol et al. 2022, §2.3 and diffusers' pipelines use): ε̂ = ε(x_t, ∅) + W · (ε(x_t, c) − ε(x_t, ∅)), with ∅ the
// null label the model was trained with (label dropout). W = 1 is the plain conditional model, W = 0 the
// unconditional one, W > 1 trades diversity for fidelity to the class. (Ho & Salimans write (1 + w) ε_c − w ε_u,
// i.e. w = W − 1.)
// The conditional and unconditional passes run as ONE batched forward of 2B samples (conditional half first), as
// GLIDE's sampling does. For a model that also outputs its variance (learned sigma, 2C channels) only the ε half is
// mixed; the variance half is the conditional pass's (GLIDE's model_fn). The result is a DiffusionModel, so any
// sampler (GaussianDiffusion's DDPM/DDIM, the diffusers-style schedulers) takes a guided model unchanged.
namespace DiffuSharp.Diffusion;

/// <summary>A class-conditional network: x: (B, C, H, W), timesteps: (B), classes: (B) labels → (B, C or 2C, H, W).</summary>
public delegate Tensor ClassConditionalModel(Tensor x, Tensor timesteps, int[] classes);

/// <summary>Classifier-free guidance (Ho &amp; Salimans 2022) for class-conditional models: ε̂ = ε_u + W·(ε_c − ε_u),
/// with the conditional and unconditional passes run as one batched forward.</summary>
public static class ClassifierFreeGuidance
{
    /// <summary>
    /// The guided model for a batch with labels <paramref name="classes"/> (B): W = 1 calls the conditional model
    /// alone, W = 0 the unconditional one (labels all <paramref name="nullLabel"/>), any other W one forward of 2B
    /// samples mixed as ε_u + W·(ε_c − ε_u). The output keeps the model's channel count.
    /// </summary>
    public static DiffusionModel Create(ClassConditionalModel model, int[] classes, int nullLabel, double scale)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(classes);
        if (!double.IsFinite(scale)) throw new ArgumentOutOfRangeException(nameof(scale), $"guidance scale must be a finite number, got {scale}");
        if (Array.IndexOf(classes, nullLabel) >= 0)
            throw new ArgumentException($"guidance: the labels include the null label {nullLabel}; guide towards a real class", nameof(classes));
        int B = classes.Length;
        var cond = (int[])classes.Clone();
        var uncond = Enumerable.Repeat(nullLabel, B).ToArray();
        if (scale == 1) return (x, t) => model(x, t, Check(x, cond));
        if (scale == 0) return (x, t) => model(x, t, Check(x, uncond));
        int[] both = [.. cond, .. uncond];
        return (x, t) =>
        {
            Check(x, cond);
            var x2 = Tensor.Concat([x, x], 0);                                   // (2B, C, H, W)
            var t2 = Tensor.Concat([t, t], 0);                                   // (2B)
            var output = model(x2, t2, both);                                    // (2B, C', H, W)
            return Mix(output, x.Dim(1), scale);
        };
    }

    /// <summary>
    /// Mixes a batched output (2B, C', H, W), conditional half first, into (B, C', H, W): ε_u + W·(ε_c − ε_u) on the
    /// first C channels; with C' = 2C the conditional variance half is appended unchanged.
    /// </summary>
    public static Tensor Mix(Tensor output, int channels, double scale)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.Rank < 2 || output.Dim(0) % 2 != 0)
            throw new ArgumentException($"guidance: expected a (2B, C', …) output, conditional half first, got {ShapeUtil.Format(output.ShapeSpan)}");
        int outC = output.Dim(1);
        if (outC != channels && outC != 2 * channels)
            throw new ArgumentException($"guidance: the model returned {outC} channels for {channels} input channels; expected {channels} or {2 * channels} (learned variance)");
        int B = output.Dim(0) / 2;
        var halves = output.Split([B, B], 0);                                    // 2 × (B, C', H, W)
        Tensor c = halves[0], u = halves[1];
        if (outC == channels) return u + (c - u) * scale;
        var cParts = c.Split([channels, channels], 1);                           // ε_c, v_c: (B, C, H, W) each
        var uEps = u.Split([channels, channels], 1)[0];                          // ε_u
        return Tensor.Concat([uEps + (cParts[0] - uEps) * scale, cParts[1]], 1); // (B, 2C, H, W)
    }

    static int[] Check(Tensor x, int[] classes)
        => x.Dim(0) == classes.Length ? classes
            : throw new ArgumentException($"guidance: {classes.Length} labels for a batch of {x.Dim(0)} (x is {ShapeUtil.Format(x.ShapeSpan)})");
}

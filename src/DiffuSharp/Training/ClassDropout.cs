// Label dropout for classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Algorithm 1
// line 3: "c ← ∅ with probability p_uncond"): each label is replaced by the null label with probability p, so one
// network learns ε(x_t, c) and ε(x_t, ∅). The null label is label_emb's extra last row, as diffusers'
// LabelEmbedding (dropout_prob > 0 adds one row, index num_classes) and DiT do.
namespace DiffuSharp.Training;

/// <summary>Label dropout for classifier-free guidance (Ho &amp; Salimans 2022, Algorithm 1): each label is replaced by
/// the null label with probability p, so one network learns both ε(x_t, c) and ε(x_t, ∅).</summary>
public static class ClassDropout
{
    /// <summary>
    /// Replaces each of <paramref name="labels"/> by <paramref name="nullLabel"/> with probability <paramref name="p"/>,
    /// in place. One uniform draw per label, in order, whatever the outcome (so the stream does not depend on the
    /// labels). p = 0 draws nothing. Returns how many labels were dropped.
    /// </summary>
    public static int Apply(Span<int> labels, double p, int nullLabel, Rng rng)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), $"class dropout probability must be in [0, 1), got {p}");
        ArgumentNullException.ThrowIfNull(rng);
        if (p == 0) return 0;
        int dropped = 0;
        for (int i = 0; i < labels.Length; i++)
            if (rng.NextDouble() < p) { labels[i] = nullLabel; dropped++; }
        return dropped;
    }
}

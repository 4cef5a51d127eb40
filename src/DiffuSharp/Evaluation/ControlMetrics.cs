// How well generated images follow their control images (the ControlNet benchmark): Canny edges of an output
// against the control edges, matched pixel for pixel with no tolerance (precision = |P ∩ R| / |P|, recall =
// |P ∩ R| / |R|, F1 = 2PR / (P + R)), and the intersection over union of an output's filled silhouette with the
// control mask. Two empty sets agree perfectly (F1 = IoU = 1); one empty set against a non-empty one scores 0.
namespace DiffuSharp.Evaluation;

/// <summary>How well outputs follow their control images: pixel-exact edge F1 and silhouette IoU.</summary>
public static class ControlMetrics
{
    /// <summary>F1 of <paramref name="predicted"/> edge pixels against <paramref name="reference"/> ones, pixel exact.</summary>
    public static double EdgeF1(ReadOnlySpan<bool> predicted, ReadOnlySpan<bool> reference)
    {
        var (both, p, r, _) = Count(predicted, reference);
        if (p == 0 && r == 0) return 1;
        if (both == 0) return 0;
        double precision = (double)both / p, recall = (double)both / r;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>|A ∩ B| / |A ∪ B| of two masks.</summary>
    public static double Iou(ReadOnlySpan<bool> a, ReadOnlySpan<bool> b)
    {
        var (both, _, _, either) = Count(a, b);
        return either == 0 ? 1 : (double)both / either;
    }

    static (long Both, long A, long B, long Either) Count(ReadOnlySpan<bool> a, ReadOnlySpan<bool> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"ControlMetrics: masks of {a.Length} and {b.Length} pixels");
        long both = 0, na = 0, nb = 0, either = 0;
        for (int k = 0; k < a.Length; k++)
        {
            if (a[k]) na++;
            if (b[k]) nb++;
            if (a[k] && b[k]) both++;
            if (a[k] || b[k]) either++;
        }
        return (both, na, nb, either);
    }
}

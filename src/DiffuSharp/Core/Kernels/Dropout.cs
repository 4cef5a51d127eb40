// The dropout mask, drawn sequentially from an explicit Rng so that a seed fixes the mask whatever the thread
// count. Each 64-bit draw yields two 24-bit uniforms u (high and low halves); an element is kept when u ≥ p,
// so P(keep) = 1 − p to within 2⁻²⁴, and kept elements carry the inverted-dropout scale 1/(1 − p) (as
// torch.nn.functional.dropout) so the expectation of the output equals the input.
namespace DiffuSharp.Kernels;

internal static class DropoutMask
{
    /// <summary>mask[i] = u_i ≥ p ? 1/(1 − p) : 0, for 0 ≤ p ≤ 1 (p = 1 drops everything).</summary>
    public static void Fill(Rng rng, float p, Span<float> mask)
    {
        // u = bits·2⁻²⁴ ≥ p  ⇔  bits ≥ ⌈p·2²⁴⌉ (compared as integers: no float rounding at the threshold).
        ulong threshold = (ulong)Math.Ceiling(p * (double)(1 << 24));
        float keep = p >= 1f ? 0f : (float)(1.0 / (1.0 - p));
        int i = 0;
        for (; i + 2 <= mask.Length; i += 2)
        {
            ulong r = rng.NextUInt64();
            mask[i] = (r >> 40) >= threshold ? keep : 0f;
            mask[i + 1] = ((r >> 8) & 0xFFFFFF) >= threshold ? keep : 0f;
        }
        if (i < mask.Length) mask[i] = (rng.NextUInt64() >> 40) >= threshold ? keep : 0f;
    }
}

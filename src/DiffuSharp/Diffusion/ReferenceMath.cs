// float32 exp exactly as PyTorch's CPU kernel computes it, for the few per-sample scalars where the reference's
// result depends on it (σ_t = exp(½ log σ²_t) in p_sample).
// Reference: SLEEF 3.x, src/libm/sleefsimdsp.c, xexpf (the u10 variant behind PyTorch's Vectorized<float>::exp on
// AVX2/AVX-512, where vmla is a fused multiply-add). It is within 1 ulp of e^x but not correctly rounded; the
// parity fixture's p_sample values were made with it, and the correctly rounded exp differs from it in the last
// bit for 3 of the fixture's 16 variances.
namespace DiffuSharp.Diffusion;

internal static class ReferenceMath
{
    /// <summary>e^d as SLEEF's expf_u10: Cody–Waite reduction d = q·ln2 + s, a degree-7 polynomial, scaling by 2^q.</summary>
    public static float ExpF(float d)
    {
        if (float.IsNaN(d)) return d;
        if (d > 100f) return float.PositiveInfinity;
        if (d < -104f) return 0f;
        // 1. q = rint(d / ln2), s = d − q·ln2 with ln2 split into a high and a low part (both fused).
        float q = MathF.Round(d * 1.442695040888963407359924681001892137426645954152985934135449406931f, MidpointRounding.ToEven);
        float s = MathF.FusedMultiplyAdd(q, -0.693145751953125f, d);
        s = MathF.FusedMultiplyAdd(q, -1.428606765330187045e-06f, s);
        // 2. e^s ≈ 1 + s + s²·P(s), Horner with fused multiply-adds.
        float u = 0.000198527617612853646278381f;
        u = MathF.FusedMultiplyAdd(u, s, 0.00139304355252534151077271f);
        u = MathF.FusedMultiplyAdd(u, s, 0.00833336077630519866943359f);
        u = MathF.FusedMultiplyAdd(u, s, 0.0416664853692054748535156f);
        u = MathF.FusedMultiplyAdd(u, s, 0.166666671633720397949219f);
        u = MathF.FusedMultiplyAdd(u, s, 0.5f);
        u = 1f + MathF.FusedMultiplyAdd(s * s, u, s);
        // 3. × 2^q in two halves (SLEEF's ldexp2k), so that neither factor overflows.
        int e = (int)q, half = e >> 1;
        return u * MathF.ScaleB(1f, half) * MathF.ScaleB(1f, e - half);
    }
}

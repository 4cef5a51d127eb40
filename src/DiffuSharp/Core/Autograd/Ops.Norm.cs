// Differentiable normalisation ops: group norm (torch.nn.functional.group_norm), the fused group norm + SiLU
// that opens every improved-diffusion ResBlock, layer norm over trailing dims (torch.nn.functional.layer_norm),
// and inverted dropout with an explicit Rng. Each saves only the per-group (per-row) mean and 1/σ for its
// backward and recomputes x̂ from the input; kernels are in Kernels/Norm.cs and Kernels/Dropout.cs.
//
// Deliberate deviation from the style guide's "LayerNorm is composed": a fused primitive here replaces eight
// graph nodes (mean, sub, square, mean, add, sqrt, div, affine) with one, and computes its statistics in double.
using System.Buffers;
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>y = [silu](group_norm(x)). x: (B, C, *spatial); weight, bias: (C) or null.</summary>
    public static Tensor GroupNorm(Tensor x, int groups, Tensor? weight, Tensor? bias, float eps, bool silu)
    {
        string op = silu ? "GroupNormSilu" : "GroupNorm";
        if (x.Rank < 2)
            throw new ArgumentException($"{op} expects (B, C, *spatial), got {ShapeUtil.Format(x.ShapeSpan)}");
        int n = x.ShapeSpan[0], c = x.ShapeSpan[1];
        if (groups < 1)
            throw new ArgumentException($"{op}: groups must be positive, got {groups} (input {ShapeUtil.Format(x.ShapeSpan)})");
        if (c % groups != 0)
            throw new ArgumentException($"{op}: {c} channels are not divisible into {groups} groups (input {ShapeUtil.Format(x.ShapeSpan)})");
        CheckAffine(op, "weight", weight, [c], x);
        CheckAffine(op, "bias", bias, [c], x);
        if (!(eps >= 0)) throw new ArgumentException($"{op}: eps must be non-negative, got {eps}");

        x = x.Contiguous(); weight = weight?.Contiguous(); bias = bias?.Contiguous();
        int s = n * c == 0 ? 0 : x.Count / (n * c);
        var y = Tensor.Uninitialized(x.Shape);                  // the kernel writes every element
        var mean = Tensor.Uninitialized([2 * n * groups]);     // μ as (hi, lo) float pairs; both written by the kernel
        var rstd = Tensor.Uninitialized([n * groups]);
        var gamma = weight?.Data.ToArray() ?? Filled(c, 1f);     // γ = 1, β = 0 when absent
        var beta = bias?.Data.ToArray() ?? Filled(c, 0f);
        if (y.Count > 0)
            fixed (float* px = x.Data, py = y.Data, pg = gamma, pb = beta, pm = mean.Data, pr = rstd.Data)
            {
                if (silu) Norm.GroupNormForward<SiluActivation>(px, pg, pb, py, pm, pr, n, c, s, groups, eps);
                else Norm.GroupNormForward<IdentityActivation>(px, pg, pb, py, pm, pr, n, c, s, groups, eps);
            }

        Tensor[] inputs = weight is null ? (bias is null ? [x] : [x, bias]) : (bias is null ? [x, weight] : [x, weight, bias]);
        return Graph.Record(op, y, inputs, dy =>
        {
            // Forward, per (b, g) with N = (C/G)·S elements: x̂ = (x − μ)·rstd, z = γ·x̂ + β, y = act(z).
            // With dz = dy·act'(z) and dx̂ = γ·dz, differentiating μ and rstd through x gives the closed form
            //   dx = rstd·(dx̂ − mean_g(dx̂) − x̂·mean_g(dx̂·x̂)),
            // and the affine parameters get dγ_c = Σ_{b,s} dz·x̂, dβ_c = Σ_{b,s} dz. SiLU's derivative reads σ back from y.
            if (y.Count == 0) return;
            bool needW = weight is not null && weight.RequiresGrad, needB = bias is not null && bias.RequiresGrad;
            var sumDzXhat = ArrayPool<double>.Shared.Rent(n * c);   // both written for every (b, c) by the kernel
            var sumDz = ArrayPool<double>.Shared.Rent(n * c);
            bool accumulate = true;                                  // a fresh dx is written, not added: no zeroing pass
            var dxData = x.RequiresGrad ? x.GradForWrite(out accumulate) : default;
            fixed (float* px = x.Data, py = y.Data, pd = dy.Data, pg = gamma, pb = beta, pm = mean.Data, pr = rstd.Data)
            fixed (float* pdx = dxData)
            fixed (double* pa = sumDzXhat, pz = sumDz)
            {
                if (silu) Norm.GroupNormBackward<SiluActivation>(px, py, pd, pg, pb, pm, pr, pdx, pa, pz, n, c, s, groups, accumulate);
                else Norm.GroupNormBackward<IdentityActivation>(px, py, pd, pg, pb, pm, pr, pdx, pa, pz, n, c, s, groups, accumulate);
                // The batch reduction runs after the parallel part, in index order: deterministic.
                if (needW) Norm.ReduceOverBatch(pa, n, c, weight!.GradData());
                if (needB) Norm.ReduceOverBatch(pz, n, c, bias!.GradData());
            }
            ArrayPool<double>.Shared.Return(sumDzXhat);          // (not returned on an exception: the GC takes them)
            ArrayPool<double>.Shared.Return(sumDz);
        });
    }

    /// <summary>layer_norm over the trailing dims named by normalizedShape; weight, bias: normalizedShape or null.</summary>
    public static Tensor LayerNorm(Tensor x, int[] normalizedShape, Tensor? weight, Tensor? bias, float eps)
    {
        int k = normalizedShape.Length;
        bool ok = k >= 1 && k <= x.Rank;
        for (int i = 0; ok && i < k; i++) ok = x.ShapeSpan[x.Rank - k + i] == normalizedShape[i];
        if (!ok)
            throw new ArgumentException($"LayerNorm: input {ShapeUtil.Format(x.ShapeSpan)} does not end in the normalized shape {ShapeUtil.Format(normalizedShape)}");
        CheckAffine("LayerNorm", "weight", weight, normalizedShape, x);
        CheckAffine("LayerNorm", "bias", bias, normalizedShape, x);
        if (!(eps >= 0)) throw new ArgumentException($"LayerNorm: eps must be non-negative, got {eps}");

        x = x.Contiguous(); weight = weight?.Contiguous(); bias = bias?.Contiguous();
        int d = ShapeUtil.Count(normalizedShape), rows = d == 0 ? 0 : x.Count / d;
        var y = Tensor.Uninitialized(x.Shape);                  // the kernel writes every element
        var mean = Tensor.Uninitialized([2 * rows]);           // both written by the kernel
        var rstd = Tensor.Uninitialized([rows]);
        var gamma = weight?.Data.ToArray() ?? Filled(d, 1f);
        var beta = bias?.Data.ToArray() ?? Filled(d, 0f);
        if (y.Count > 0)
            fixed (float* px = x.Data, py = y.Data, pg = gamma, pb = beta, pm = mean.Data, pr = rstd.Data)
                Norm.LayerNormForward(px, pg, pb, py, pm, pr, rows, d, eps);

        Tensor[] inputs = weight is null ? (bias is null ? [x] : [x, bias]) : (bias is null ? [x, weight] : [x, weight, bias]);
        return Graph.Record("LayerNorm", y, inputs, dy =>
        {
            // Forward, per row of D: x̂ = (x − μ)·rstd, y = γ⊙x̂ + β. As for group norm (one group, per-position γ):
            //   dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = γ⊙dy;  dγ = Σ_rows dy⊙x̂;  dβ = Σ_rows dy.
            if (y.Count == 0) return;
            bool needW = weight is not null && weight.RequiresGrad, needB = bias is not null && bias.RequiresGrad;
            fixed (float* px = x.Data, pd = dy.Data, pg = gamma, pm = mean.Data, pr = rstd.Data)
            fixed (float* pdx = x.RequiresGrad ? x.GradData() : default)
            fixed (float* pdg = needW ? weight!.GradData() : default, pdb = needB ? bias!.GradData() : default)
                Norm.LayerNormBackward(px, pd, pg, pm, pr, pdx, pdg, pdb, rows, d);
        });
    }

    /// <summary>Inverted dropout: y = x⊙mask, mask ∈ {0, 1/(1 − p)} drawn from rng; the identity when not training
    /// or p = 0 (rng is then left untouched).</summary>
    public static Tensor Dropout(Tensor x, float p, Rng rng, bool training)
    {
        if (!(p >= 0f && p <= 1f)) throw new ArgumentException($"Dropout: p must be in [0, 1], got {p} (input {ShapeUtil.Format(x.ShapeSpan)})");
        ArgumentNullException.ThrowIfNull(rng);
        if (!training || p == 0f) return x;
        x = x.Contiguous();
        ulong key = rng.NextUInt64();                           // the mask is a function of (key, p): nothing is saved
        var y = Tensor.Uninitialized(x.Shape);
        DropoutMask.Apply(key, p, x.Data, y.Data);
        // y = x⊙mask  =>  dx += dy⊙mask, the same mask drawn again from the key (written when x has no gradient yet)
        return Graph.Record("Dropout", y, x, dy =>
        {
            if (x.Grad is null) DropoutMask.Apply(key, p, dy.Data, x.UninitializedGradData());
            else DropoutMask.ApplyAdd(key, p, dy.Data, x.GradData());
        });
    }

    static void CheckAffine(string op, string what, Tensor? t, int[] expected, Tensor x)
    {
        if (t is not null && !ShapeUtil.Equal(t.ShapeSpan, expected))
            throw new ArgumentException($"{op}: {what} must be {ShapeUtil.Format(expected)}, got {ShapeUtil.Format(t.ShapeSpan)} (input {ShapeUtil.Format(x.ShapeSpan)})");
    }

    static float[] Filled(int n, float v)
    {
        var a = new float[n];
        if (v != 0f) a.AsSpan().Fill(v);
        return a;
    }
}

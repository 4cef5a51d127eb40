// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_ (norm_type 2, PyTorch 1.13):
// total = ‖(‖g₁‖, ‖g₂‖, …)‖₂, coef = max_norm / (total + 1e-6), and every gradient is scaled by coef when
// coef < 1. Deviation: the norm is accumulated in double (PyTorch sums in float32), so it does not depend on how
// the parameters are split into tensors; the 1e-6 keeps coef finite for an all-zero gradient, as in PyTorch.
using DiffuSharp.Kernels;

namespace DiffuSharp.Training;

/// <summary>Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_ (the norm accumulated in
/// double).</summary>
public static class GradClip
{
    /// <summary>Scales all gradients so their global L2 norm is at most maxNorm; returns the norm before clipping.
    /// Parameters without a gradient are ignored. A non-finite norm is returned as is and, as in PyTorch
    /// (error_if_nonfinite=False), the gradients are scaled by the resulting coefficient.</summary>
    public static double ClipGlobalNorm(IReadOnlyList<Tensor> parameters, double maxNorm)
    {
        if (!(maxNorm >= 0)) throw new ArgumentException($"ClipGlobalNorm: maxNorm must be non-negative, got {maxNorm}");
        double sumSq = 0;
        foreach (var p in parameters)
            if (p.Grad is { } g) sumSq += Optim.SumOfSquares(g.Contiguous().Data);
        double total = Math.Sqrt(sumSq);
        double coef = maxNorm / (total + 1e-6);
        if (coef < 1 || double.IsNaN(coef))
        {
            float c = (float)coef;
            foreach (var p in parameters)
                if (p.Grad is { IsContiguous: true } g)
                    Binary.MapScalarB<MulOp>(g.Data, c, g.Data);
        }
        return total;
    }
}

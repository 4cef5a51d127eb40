// The whole variational bound in bits per dimension (the NLL reported in iDDPM §2.1 and Table 2): the prior term
// L_T plus every L_t, t = T−1 … 0, each estimated at one draw of x_t.
// Reference: openai/improved-diffusion, improved_diffusion/gaussian_diffusion.py (_prior_bpd, calc_bpd_loop).
// Deviation: noise for each x_t comes from an explicit Rng (the reference calls th.randn_like), or is one fixed
// tensor used at every t (common random numbers; also how the parity fixture injects it).
namespace DiffuSharp.Diffusion;

public partial class GaussianDiffusion
{
    /// <summary>L_T = KL(q(x_T | x_0) ‖ N(0, I)) per sample, in bits per dimension (DDPM eq. 5). x0: (B, C, H, W) → (B).
    /// Cannot be optimised: it depends only on the schedule.</summary>
    public Tensor PriorBpd(Tensor x0)
    {
        var q = QMeanVariance(x0, Fill(x0.Dim(0), NumTimesteps - 1));
        return DiffusionLosses.MeanFlat(DiffusionLosses.NormalKl(q.Mean, q.LogVariance, 0.0, 0.0)) / Ln2;
    }

    /// <summary>
    /// The full bound per sample, in bits per dimension, with the per-timestep terms: VB terms L_t, the MSE of x̂_0
    /// and of ε̂. One x_t per timestep: noise is an Rng (a fresh ε for every t, as the reference) or a fixed
    /// (B, C, H, W) tensor (the same ε at every t). x0: (B, C, H, W), data in [−1, 1].
    /// Columns of the (B, T) results run from t = T − 1 (column 0) down to t = 0, as the reference stacks them.
    /// </summary>
    public BpdResult CalcBpdLoop(DiffusionModel model, Tensor x0, NoiseSource noise, bool clipDenoised = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (noise.IsNone) throw new ArgumentException("CalcBpdLoop needs noise: pass an Rng or a noise Tensor", nameof(noise));
        if (x0.Rank < 2) throw new ArgumentException($"CalcBpdLoop: x0 must be (B, C, …), got {ShapeUtil.Format(x0.ShapeSpan)}");
        int B = x0.Dim(0), T = NumTimesteps;
        var vb = new float[B * T];
        var xStartMse = new float[B * T];
        var mse = new float[B * T];
        using (Tensor.NoGrad())
        {
            x0 = x0.Detach();
            for (int t = T - 1, col = 0; t >= 0; t--, col++)
            {
                using var scope = TensorScope.Begin();               // each t's tensors go back to the pool
                // 1. x_t ~ q(x_t | x_0).
                var tBatch = Fill(B, t);
                var eps = noise.Draw(x0, nameof(CalcBpdLoop));
                var xt = QSample(x0, tBatch, eps);
                // 2. L_t at this x_t, and how well x_0 and ε are recovered.
                var o = VbTermsBpd(model, x0, xt, tBatch, clipDenoised);
                var predEps = PredictEpsFromXStart(xt, tBatch, o.PredXStart);
                Scatter(o.Output, vb, col, T);
                Scatter(DiffusionLosses.MeanFlat((o.PredXStart - x0).Square()), xStartMse, col, T);
                Scatter(DiffusionLosses.MeanFlat((predEps - eps).Square()), mse, col, T);
            }
            // 3. total = Σ_t L_t + L_T.
            var vbT = Tensor.Wrap(vb, B, T);
            var prior = PriorBpd(x0);
            var total = vbT.Sum(1) + prior;
            return new BpdResult(total, prior, vbT, Tensor.Wrap(xStartMse, B, T), Tensor.Wrap(mse, B, T));
        }
    }

    /// <summary>Writes a (B) tensor into column col of a row-major (B, T) array.</summary>
    static void Scatter(Tensor values, float[] dst, int col, int T)
    {
        var v = values.ToArray();
        for (int b = 0; b < v.Length; b++) dst[b * T + col] = v[b];
    }
}

// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), exactly as torch.optim.AdamW in
// PyTorch 1.13 with foreach=False, amsgrad=False, maximize=False (torch/optim/adamw.py, _single_tensor_adamw):
// bias corrections in double as Python floats, every tensor operation in float32 in ATen's order (see
// Kernels/Optim.cs), so a trajectory replayed from PyTorch's gradients matches its parameters bit for bit.
// improved-diffusion trains with this optimizer (weight_decay 0 by default).
//
// Deviation: PyTorch keeps a step count per parameter and skips a parameter whose .grad is None without
// advancing its count; here one count is shared (a parameter without a gradient is skipped, the count advances).
using DiffuSharp.Kernels;

namespace DiffuSharp.Training;

/// <summary>AdamW hyper-parameters (PyTorch's defaults, except the learning rate: improved-diffusion's 1e-4).</summary>
public sealed record AdamWConfig(
    double Lr = 1e-4,
    double Beta1 = 0.9,
    double Beta2 = 0.999,
    double Eps = 1e-8,               // added to √v̂, after the bias correction (PyTorch's placement)
    double WeightDecay = 0.0);       // decoupled: p ← p·(1 − lr·wd) before the Adam update

/// <summary>Checkpointable optimizer state: the step count and the first and second moments per parameter.</summary>
public sealed record AdamWState(long Step, float[][] ExpAvg, float[][] ExpAvgSq);

/// <summary>AdamW over a list of parameter tensors, updating their <c>Data</c> in place from their <c>Grad</c>.</summary>
public sealed class AdamW
{
    readonly Tensor[] _params;
    readonly float[][] _m, _v;

    /// <summary>The hyperparameters (betas, ε, weight decay) the optimizer was built with.</summary>
    public AdamWConfig Config { get; }

    /// <summary>The learning rate of the next <see cref="Step"/> (set it from a schedule).</summary>
    public double Lr { get; set; }

    /// <summary>Steps taken so far (t of the bias corrections 1 − β^t).</summary>
    public long StepCount { get; private set; }

    /// <summary>The tensors this optimizer updates in place, in the order of its moment buffers.</summary>
    public IReadOnlyList<Tensor> Parameters => _params;

    /// <param name="parameters">contiguous tensors (views into one flat buffer are fine), each updated in place</param>
    public AdamW(IReadOnlyList<Tensor> parameters, AdamWConfig? config = null)
    {
        Config = config ?? new AdamWConfig();
        var c = Config;
        if (!(c.Lr >= 0)) throw new ArgumentException($"AdamW: Lr must be non-negative, got {c.Lr}");
        if (!(c.Beta1 >= 0 && c.Beta1 < 1)) throw new ArgumentException($"AdamW: Beta1 must be in [0, 1), got {c.Beta1}");
        if (!(c.Beta2 >= 0 && c.Beta2 < 1)) throw new ArgumentException($"AdamW: Beta2 must be in [0, 1), got {c.Beta2}");
        if (!(c.Eps >= 0)) throw new ArgumentException($"AdamW: Eps must be non-negative, got {c.Eps}");
        if (!(c.WeightDecay >= 0)) throw new ArgumentException($"AdamW: WeightDecay must be non-negative, got {c.WeightDecay}");
        _params = new Tensor[parameters.Count];
        _m = new float[parameters.Count][];
        _v = new float[parameters.Count][];
        for (int i = 0; i < _params.Length; i++)
        {
            var p = parameters[i];
            if (!p.IsContiguous) throw new ArgumentException($"AdamW: parameter {i} {ShapeUtil.Format(p.ShapeSpan)} is not contiguous (strides {ShapeUtil.Format(p.StridesSpan)})");
            _params[i] = p;
            _m[i] = new float[p.Count];
            _v[i] = new float[p.Count];
        }
        Lr = c.Lr;
    }

    /// <summary>One update of every parameter that has a gradient.</summary>
    public void Step()
    {
        var c = Config;
        long t = ++StepCount;
        // 1. Scalars in double, as PyTorch's Python floats: bias corrections, step size, √bc2.
        double bc1 = 1 - Math.Pow(c.Beta1, t);
        double bc2 = 1 - Math.Pow(c.Beta2, t);
        double stepSize = Lr / bc1;
        // 2. Rounded once to float32, as ATen does with a Python scalar applied to a float32 tensor.
        var s = new AdamWScalars(
            Decay: (float)(1 - Lr * c.WeightDecay),
            Beta1: (float)c.Beta1, OneMinusBeta1: (float)(1 - c.Beta1),
            Beta2: (float)c.Beta2, OneMinusBeta2: (float)(1 - c.Beta2),
            Bc2Sqrt: (float)Math.Sqrt(bc2),
            Eps: (float)c.Eps,
            NegStepSize: (float)-stepSize);
        // 3. p ← p·(1 − lr·wd); m, v ← moments; p ← p − step·m / (√v / √bc2 + eps)
        for (int i = 0; i < _params.Length; i++)
        {
            var p = _params[i];
            if (p.Grad is null) continue;
            var g = p.Grad;
            if (!ShapeUtil.Equal(g.ShapeSpan, p.ShapeSpan))
                throw new InvalidOperationException($"AdamW: gradient {ShapeUtil.Format(g.ShapeSpan)} of parameter {i} does not match its shape {ShapeUtil.Format(p.ShapeSpan)}");
            Optim.AdamWStep(p.Data, g.Contiguous().Data, _m[i], _v[i], s);
        }
    }

    /// <summary>Zeroes every gradient in place (buffers are kept, so views into a flat gradient buffer stay valid).</summary>
    public void ZeroGrad()
    {
        foreach (var p in _params)
            if (p.Grad is { IsContiguous: true } g) g.Data.Clear();
            else p.Grad = null;
    }

    /// <summary>A copy of the state, for a checkpoint.</summary>
    public AdamWState ExportState()
    {
        var m = new float[_m.Length][]; var v = new float[_v.Length][];
        for (int i = 0; i < m.Length; i++) { m[i] = (float[])_m[i].Clone(); v[i] = (float[])_v[i].Clone(); }
        return new AdamWState(StepCount, m, v);
    }

    /// <summary>Restores a state from <see cref="ExportState"/> (copied in; shapes are checked).</summary>
    public void ImportState(AdamWState state)
    {
        if (state.Step < 0) throw new ArgumentException($"AdamW: step count must be non-negative, got {state.Step}");
        if (state.ExpAvg.Length != _params.Length || state.ExpAvgSq.Length != _params.Length)
            throw new ArgumentException($"AdamW: state has {state.ExpAvg.Length}/{state.ExpAvgSq.Length} moment arrays for {_params.Length} parameters");
        for (int i = 0; i < _params.Length; i++)
            if (state.ExpAvg[i].Length != _params[i].Count || state.ExpAvgSq[i].Length != _params[i].Count)
                throw new ArgumentException($"AdamW: state of parameter {i} has {state.ExpAvg[i].Length}/{state.ExpAvgSq[i].Length} values for shape {ShapeUtil.Format(_params[i].ShapeSpan)} ({_params[i].Count})");
        for (int i = 0; i < _params.Length; i++)
        {
            state.ExpAvg[i].CopyTo(_m[i], 0);
            state.ExpAvgSq[i].CopyTo(_v[i], 0);
        }
        StepCount = state.Step;
    }
}

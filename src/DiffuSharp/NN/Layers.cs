// Basic layers: Linear and Embedding, initialised as PyTorch initialises them (kaiming-uniform with a = √5, i.e.
// U(−1/√fan_in, 1/√fan_in) for weights and biases; N(0, 1) for embeddings), from an explicit Rng; without one they
// start at zero, which saves drawing the numbers for a model about to load its weights.
using DiffuSharp.Autograd;
using DiffuSharp.Kernels;

namespace DiffuSharp.NN;

/// <summary>torch.nn.Linear, y = x·Wᵀ + b, with PyTorch's default initialisation (weights and bias uniform in
/// ±1/√in).</summary>
public sealed class Linear : Module
{
    /// <summary>(out, in), the parameter "weight".</summary>
    public Tensor Weight { get; }
    /// <summary>(out), the parameter "bias"; null for a layer built without bias.</summary>
    public Tensor? Bias { get; }
    /// <summary>The size of the input's last dimension.</summary>
    public int InFeatures { get; }
    /// <summary>The size of the output's last dimension.</summary>
    public int OutFeatures { get; }

    /// <param name="rng">draws the initial weights; null leaves them zero (for a model whose weights are loaded next)</param>
    public Linear(int inFeatures, int outFeatures, Rng? rng, bool bias = true)
    {
        (InFeatures, OutFeatures) = (inFeatures, outFeatures);
        float bound = 1f / MathF.Sqrt(inFeatures);
        Weight = Parameter("weight", rng is null ? Tensor.Zeros(outFeatures, inFeatures) : Tensor.Rand([outFeatures, inFeatures], rng, -bound, bound));
        if (bias) Bias = Parameter("bias", rng is null ? Tensor.Zeros(outFeatures) : Tensor.Rand([outFeatures], rng, -bound, bound));
    }

    /// <summary>x: (…, in) → (…, out)</summary>
    public Tensor Forward(Tensor x) => Ops.LinearPrepacked(x, [Weight], [Bias]) is [var y] ? y : Tensor.Linear(x, Weight, Bias);

    /// <summary>Each layer's <see cref="Forward(Tensor)"/> of the same x (a self-attention's q, k and v). Without
    /// gradients and with every weight packed (<see cref="PackWeightForInference"/>) they run as one product that packs
    /// x once; the outputs are the same bits either way.</summary>
    public static Tensor[] Forward(Tensor x, params ReadOnlySpan<Linear> layers)
    {
        if (!GradMode.IsEnabled)
        {
            var weights = new Tensor[layers.Length];
            var biases = new Tensor?[layers.Length];
            for (int i = 0; i < layers.Length; i++) (weights[i], biases[i]) = (layers[i].Weight, layers[i].Bias);
            if (Ops.LinearPrepacked(x, weights, biases) is { } ys) return ys;
        }
        var outputs = new Tensor[layers.Length];
        for (int i = 0; i < layers.Length; i++) outputs[i] = layers[i].Forward(x);
        return outputs;
    }

    /// <summary>
    /// Rewrites the weight in place into the layout of <see cref="Gemm.LinearPrepacked(int, int, int, float*, float*, float*, float*)"/> for faster forwards without
    /// gradients (on AVX-512 machines, out_features a multiple of 32; elsewhere nothing changes and false comes back).
    /// The results are the same bits. Nothing is copied: any other read of <see cref="Weight"/>'s values (a state dict,
    /// a save, a forward with gradients) first puts them back in (out, in) order, which then stays. For inference-only
    /// models: a weight that shares a buffer (a model packed for training) is left as it is.
    /// </summary>
    public bool PackWeightForInference()
    {
        var w = Weight;
        if (w.HasPackedLayout) return true;
        if (!w.OwnsStorage || !Gemm.CanPrepackLinear(OutFeatures, InFeatures)) return false;
        int n = OutFeatures, k = InFeatures;
        Repack(w.Storage, n, k, pack: true);                                // the whole array: the weight owns it
        w.SetPackedLayout(storage => Repack(storage, n, k, pack: false));
        return true;
    }

    static unsafe void Repack(float[] storage, int n, int k, bool pack)
    {
        fixed (float* p = storage)
        {
            if (pack) Gemm.PrepackLinearWeight(n, k, p);
            else Gemm.UnpackLinearWeight(n, k, p);
        }
    }
}

/// <summary>torch.nn.Embedding: a (count, dim) lookup table, initialised N(0, 1) as PyTorch does.</summary>
public sealed class Embedding : Module
{
    /// <summary>(count, dim), the parameter "weight": row i is the vector of index i.</summary>
    public Tensor Weight { get; }

    /// <param name="rng">draws the initial table; null leaves it zero (for a model whose weights are loaded next)</param>
    public Embedding(int count, int dim, Rng? rng) => Weight = Parameter("weight", rng is null ? Tensor.Zeros(count, dim) : Tensor.RandN([count, dim], rng));

    /// <summary>indices (n) → (n, dim)</summary>
    public Tensor Forward(int[] indices)
    {
        int n = Weight.Dim(0);
        foreach (int i in indices)
            if ((uint)i >= (uint)n) throw new ArgumentException($"Embedding: index {i} is out of range for {n} entries");
        return Tensor.Embedding(Weight, indices);
    }
}

/// <summary>Parameter initialisers used by the models.</summary>
public static class Init
{
    /// <summary>Sets every parameter of a module to zero (improved-diffusion's zero_module) and returns it.</summary>
    public static T Zero<T>(T module) where T : Module
    {
        foreach (var p in module.Parameters()) p.Data.Clear();
        return module;
    }
}

// The public tensor API: thin delegations to the differentiable ops, and the functions composed from them
// (mean, variance, mse loss) which need no backward code of their own.
using DiffuSharp.Autograd;

namespace DiffuSharp;

public sealed partial class Tensor
{
    /// <summary>Turns graph recording off until the scope is disposed: <c>using (Tensor.NoGrad()) { … }</c>.</summary>
    public static GradMode.Scope NoGrad() => GradMode.Enter();

    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);
    public static Tensor operator -(Tensor a, Tensor b) => Ops.Sub(a, b);
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);
    public static Tensor operator /(Tensor a, Tensor b) => Ops.Div(a, b);
    public static Tensor operator -(Tensor a) => Ops.Affine(a, -1f, 0f);
    public static Tensor operator +(Tensor a, double s) => Ops.Affine(a, 1f, (float)s);
    public static Tensor operator +(double s, Tensor a) => Ops.Affine(a, 1f, (float)s);
    public static Tensor operator -(Tensor a, double s) => Ops.Affine(a, 1f, (float)-s);
    public static Tensor operator -(double s, Tensor a) => Ops.Affine(a, -1f, (float)s);
    public static Tensor operator *(Tensor a, double s) => Ops.Affine(a, (float)s, 0f);
    public static Tensor operator *(double s, Tensor a) => Ops.Affine(a, (float)s, 0f);
    public static Tensor operator /(Tensor a, double s) => Ops.Affine(a, (float)(1.0 / s), 0f);

    public Tensor Exp() => Ops.Exp(this);
    public Tensor Log() => Ops.Log(this);
    public Tensor Sqrt() => Ops.Sqrt(this);
    public Tensor Tanh() => Ops.Tanh(this);
    public Tensor Sigmoid() => Ops.Sigmoid(this);
    public Tensor Silu() => Ops.Silu(this);
    public Tensor Gelu() => Ops.Gelu(this);
    /// <summary>GEGLU: the last axis (2F) split in halves h, gate → h · gelu(gate), (…, F), in one pass.</summary>
    public Tensor Geglu() => Ops.Geglu(this);
    public Tensor Pow(double p) => Ops.Pow(this, (float)p);
    public Tensor Square() => Ops.Mul(this, this);
    public Tensor Clamp(double min, double max) => Ops.Clamp(this, (float)min, (float)max);
    public static Tensor Where(Tensor cond, Tensor a, Tensor b) => Ops.Where(cond, a, b);

    public Tensor Sum(params int[] axes) => Ops.Sum(this, axes, keepDim: false);
    public Tensor Sum(int[] axes, bool keepDim) => Ops.Sum(this, axes, keepDim);

    public Tensor Mean(params int[] axes) => Mean(axes, keepDim: false);

    public Tensor Mean(int[] axes, bool keepDim)
    {
        int n = axes.Length == 0 ? Count : axes.Aggregate(1, (p, a) => p * Dim(a));
        return Ops.Sum(this, axes, keepDim) * (1.0 / n);
    }

    public Tensor Max(int axis, bool keepDim = false) => Ops.Max(this, axis, keepDim);

    /// <summary>Variance over axes; unbiased divides by n − 1 (PyTorch's default), else by n.</summary>
    public Tensor Var(int[] axes, bool unbiased = true, bool keepDim = false)
    {
        int n = axes.Length == 0 ? Count : axes.Aggregate(1, (p, a) => p * Dim(a));
        var centered = this - Mean(axes, keepDim: true);
        return centered.Square().Sum(axes, keepDim) * (1.0 / (unbiased ? n - 1 : n));
    }

    public Tensor Softmax(int axis = -1) => Ops.Softmax(this, axis);
    public Tensor LogSoftmax(int axis = -1) => Ops.LogSoftmax(this, axis);

    public Tensor MatMul(Tensor b) => Ops.MatMul(this, b);
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) => Ops.Linear(x, weight, bias);

    public Tensor Contiguous() => Ops.Contiguous(this);
    public Tensor Reshape(params int[] shape) => Ops.Reshape(this, shape);
    public Tensor Permute(params int[] axes) => Ops.Permute(this, axes);
    public Tensor Transpose(int axis0, int axis1) => Ops.Transpose(this, axis0, axis1);
    public Tensor Slice(int axis, int start, int length) => Ops.Slice(this, axis, start, length);
    public Tensor Expand(params int[] shape) => Ops.Expand(this, shape);
    public static Tensor Concat(IReadOnlyList<Tensor> xs, int axis) => Ops.Concat(xs, axis);
    public Tensor IndexSelect(int axis, int[] indices) => Ops.IndexSelect(this, axis, indices);

    /// <summary>Splits along axis into pieces of the given sizes (views).</summary>
    public Tensor[] Split(int[] sizes, int axis)
    {
        int ax = ShapeUtil.Axis(axis, Rank, "Split");
        if (sizes.Sum() != _shape[ax]) throw new ArgumentException($"Split: sizes ({string.Join(", ", sizes)}) do not add up to {_shape[ax]} along axis {axis} of shape {ShapeUtil.Format(_shape)}");
        var r = new Tensor[sizes.Length];
        int at = 0;
        for (int i = 0; i < sizes.Length; i++) { r[i] = Slice(ax, at, sizes[i]); at += sizes[i]; }
        return r;
    }

    /// <summary>Splits along axis into n equal pieces (views).</summary>
    public Tensor[] Chunk(int n, int axis)
    {
        int ax = ShapeUtil.Axis(axis, Rank, "Chunk");
        if (n <= 0 || _shape[ax] % n != 0) throw new ArgumentException($"Chunk: axis {axis} of shape {ShapeUtil.Format(_shape)} does not split into {n} equal pieces");
        return Split(Enumerable.Repeat(_shape[ax] / n, n).ToArray(), ax);
    }

    /// <summary>Rows of an embedding table: weight (num, dim), indices (n) → (n, dim).</summary>
    public static Tensor Embedding(Tensor weight, int[] indices) => Ops.IndexSelect(weight, 0, indices);

    /// <summary>mean((a − b)²)</summary>
    public static Tensor MseLoss(Tensor prediction, Tensor target)
    {
        if (!ShapeUtil.Equal(prediction._shape, target._shape))
            throw new ArgumentException($"MseLoss: prediction {ShapeUtil.Format(prediction._shape)} and target {ShapeUtil.Format(target._shape)} differ in shape");
        return (prediction - target).Square().Mean();
    }
}

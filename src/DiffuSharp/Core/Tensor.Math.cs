// The public tensor API: thin delegations to the differentiable ops, and the functions composed from them
// (mean, variance, mse loss) which need no backward code of their own.
using DiffuSharp.Autograd;

namespace DiffuSharp;

public sealed partial class Tensor
{
    /// <summary>Turns graph recording off until the scope is disposed: <c>using (Tensor.NoGrad()) { … }</c>.</summary>
    public static GradMode.Scope NoGrad() => GradMode.Enter();

    /// <summary>Elementwise a + b with numpy broadcasting; differentiable in both.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);
    /// <summary>Elementwise a − b with numpy broadcasting; differentiable in both.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Ops.Sub(a, b);
    /// <summary>Elementwise a · b with numpy broadcasting; differentiable in both.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);
    /// <summary>Elementwise a / b with numpy broadcasting; differentiable in both.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Ops.Div(a, b);
    /// <summary>Elementwise −a.</summary>
    public static Tensor operator -(Tensor a) => Ops.Affine(a, -1f, 0f);
    /// <summary>a + s for every element (s rounded to float32).</summary>
    public static Tensor operator +(Tensor a, double s) => Ops.Affine(a, 1f, (float)s);
    /// <summary>s + a for every element (s rounded to float32).</summary>
    public static Tensor operator +(double s, Tensor a) => Ops.Affine(a, 1f, (float)s);
    /// <summary>a − s for every element (s rounded to float32).</summary>
    public static Tensor operator -(Tensor a, double s) => Ops.Affine(a, 1f, (float)-s);
    /// <summary>s − a for every element (s rounded to float32).</summary>
    public static Tensor operator -(double s, Tensor a) => Ops.Affine(a, -1f, (float)s);
    /// <summary>a · s for every element (s rounded to float32).</summary>
    public static Tensor operator *(Tensor a, double s) => Ops.Affine(a, (float)s, 0f);
    /// <summary>s · a for every element (s rounded to float32).</summary>
    public static Tensor operator *(double s, Tensor a) => Ops.Affine(a, (float)s, 0f);
    /// <summary>a / s for every element, computed as a · (1/s) with 1/s rounded to float32.</summary>
    public static Tensor operator /(Tensor a, double s) => Ops.Affine(a, (float)(1.0 / s), 0f);

    /// <summary>Elementwise eˣ.</summary>
    public Tensor Exp() => Ops.Exp(this);
    /// <summary>Elementwise natural logarithm (−∞ at 0, NaN below).</summary>
    public Tensor Log() => Ops.Log(this);
    /// <summary>Elementwise square root (NaN below 0).</summary>
    public Tensor Sqrt() => Ops.Sqrt(this);
    /// <summary>Elementwise hyperbolic tangent.</summary>
    public Tensor Tanh() => Ops.Tanh(this);
    /// <summary>Elementwise logistic sigmoid 1 / (1 + e⁻ˣ).</summary>
    public Tensor Sigmoid() => Ops.Sigmoid(this);
    /// <summary>Elementwise SiLU (swish), x · sigmoid(x), as F.silu.</summary>
    public Tensor Silu() => Ops.Silu(this);
    /// <summary>Elementwise QuickGELU, x · sigmoid(1.702 x) (OpenAI's CLIP, transformers' quick_gelu).</summary>
    public Tensor QuickGelu() => Ops.QuickGelu(this);
    /// <summary>Elementwise GELU with the exact erf form, x · Φ(x), as F.gelu with approximate="none".</summary>
    public Tensor Gelu() => Ops.Gelu(this);
    /// <summary>GEGLU: the last axis (2F) split in halves h, gate → h · gelu(gate), (…, F), in one pass.</summary>
    public Tensor Geglu() => Ops.Geglu(this);
    /// <summary>Elementwise xᵖ for a scalar exponent (rounded to float32).</summary>
    public Tensor Pow(double p) => Ops.Pow(this, (float)p);
    /// <summary>Elementwise x², as this * this.</summary>
    public Tensor Square() => Ops.Mul(this, this);
    /// <summary>Elementwise clamp to [<paramref name="min"/>, <paramref name="max"/>], as torch.clamp; the gradient
    /// passes only where x lies inside the range. Throws when min is greater than max.</summary>
    public Tensor Clamp(double min, double max) => Ops.Clamp(this, (float)min, (float)max);
    /// <summary>Elementwise <paramref name="cond"/> ? <paramref name="a"/> : <paramref name="b"/> with broadcasting, as
    /// torch.where; cond is true where nonzero and gets no gradient.</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b) => Ops.Where(cond, a, b);

    /// <summary>Sum over <paramref name="axes"/> (all axes when none are given), dropping the reduced axes.</summary>
    public Tensor Sum(params int[] axes) => Ops.Sum(this, axes, keepDim: false);
    /// <summary>Sum over <paramref name="axes"/> (all axes when empty); <paramref name="keepDim"/> keeps them as size-1
    /// axes, as torch.sum(keepdim=True).</summary>
    public Tensor Sum(int[] axes, bool keepDim) => Ops.Sum(this, axes, keepDim);

    /// <summary>Mean over <paramref name="axes"/> (all axes when none are given), dropping the reduced axes.</summary>
    public Tensor Mean(params int[] axes) => Mean(axes, keepDim: false);

    /// <summary>Mean over <paramref name="axes"/> (all axes when empty); <paramref name="keepDim"/> keeps them as
    /// size-1 axes.</summary>
    public Tensor Mean(int[] axes, bool keepDim)
    {
        int n = axes.Length == 0 ? Count : axes.Aggregate(1, (p, a) => p * Dim(a));
        return Ops.Sum(this, axes, keepDim) * (1.0 / n);
    }

    /// <summary>Maximum along <paramref name="axis"/> (values only, as torch.amax); the gradient goes to the first
    /// maximal element. Throws for an empty axis.</summary>
    public Tensor Max(int axis, bool keepDim = false) => Ops.Max(this, axis, keepDim);

    /// <summary>Variance over axes; unbiased divides by n − 1 (PyTorch's default), else by n.</summary>
    public Tensor Var(int[] axes, bool unbiased = true, bool keepDim = false)
    {
        int n = axes.Length == 0 ? Count : axes.Aggregate(1, (p, a) => p * Dim(a));
        var centered = this - Mean(axes, keepDim: true);
        return centered.Square().Sum(axes, keepDim) * (1.0 / (unbiased ? n - 1 : n));
    }

    /// <summary>Softmax along <paramref name="axis"/> (default the last), computed stably as exp(x − max) / Σ exp(x −
    /// max).</summary>
    public Tensor Softmax(int axis = -1) => Ops.Softmax(this, axis);
    /// <summary>Log-softmax along <paramref name="axis"/> (default the last): x − max − log Σ exp(x − max), as
    /// F.log_softmax.</summary>
    public Tensor LogSoftmax(int axis = -1) => Ops.LogSoftmax(this, axis);

    /// <summary>Matrix product over the last two axes, (…, m, k) · (…, k, n) → (…, m, n), as torch.matmul. A rank-2
    /// operand is shared by every batch entry of the other; otherwise the batch axes must be equal (no
    /// broadcasting).</summary>
    public Tensor MatMul(Tensor b) => Ops.MatMul(this, b);
    /// <summary>y = x·Wᵀ + b as F.linear: <paramref name="x"/> (…, in), <paramref name="weight"/> (out, in),
    /// <paramref name="bias"/> (out) or null; returns (…, out).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) => Ops.Linear(x, weight, bias);

    /// <summary>This tensor if it is already contiguous (row-major with no gaps), else a contiguous copy that keeps the
    /// autograd history.</summary>
    public Tensor Contiguous() => Ops.Contiguous(this);
    /// <summary>The same elements in row-major order seen with another shape (one size may be -1, inferred), as
    /// torch.reshape; copies only when this tensor is not contiguous.</summary>
    public Tensor Reshape(params int[] shape) => Ops.Reshape(this, shape);
    /// <summary>A view with its axes reordered: result axis i is this tensor's axis <paramref name="axes"/>[i]
    /// (torch.permute); no copy.</summary>
    public Tensor Permute(params int[] axes) => Ops.Permute(this, axes);
    /// <summary>A view with <paramref name="axis0"/> and <paramref name="axis1"/> swapped (torch.transpose); no
    /// copy.</summary>
    public Tensor Transpose(int axis0, int axis1) => Ops.Transpose(this, axis0, axis1);
    /// <summary>A view of <paramref name="length"/> entries along <paramref name="axis"/> starting at
    /// <paramref name="start"/> (x.narrow(axis, start, length)); throws when the range leaves the axis.</summary>
    public Tensor Slice(int axis, int start, int length) => Ops.Slice(this, axis, start, length);
    /// <summary>A view broadcast to <paramref name="shape"/> (size-1 axes repeated with stride 0, new leading axes
    /// added), as torch.expand; the backward sums over the repeats.</summary>
    public Tensor Expand(params int[] shape) => Ops.Expand(this, shape);
    /// <summary>The tensors of <paramref name="xs"/> joined along <paramref name="axis"/> (torch.cat); all other sizes
    /// must match.</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> xs, int axis) => Ops.Concat(xs, axis);
    /// <summary>The entries <paramref name="indices"/>[i] along <paramref name="axis"/>, in that order and repeats
    /// allowed (torch.index_select); the backward scatter-adds.</summary>
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

// Differentiable elementwise ops: broadcasting add/sub/mul/div, scalar affine maps, the unary functions, pow,
// clamp and where. Binary ops broadcast directly (numpy rules); their backward reduces the full-shape gradient
// back to each operand's shape with a zero-stride scatter-add.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    public static Tensor Add(Tensor a, Tensor b) => BinaryOp<AddOp>("Add", a, b, static (a, b, dy) =>
    {
        // y = a + b  =>  da += dy, db += dy (each summed over its broadcast axes). dy itself may become the
        // gradient of one full-shape operand (after the other has read it).
        bool adoptA = a.RequiresGrad && ShapeUtil.Equal(a.ShapeSpan, dy.ShapeSpan) && !ReferenceEquals(a, b);
        if (b.RequiresGrad) AccumulateBroadcast(b, dy, adopt: !adoptA);
        if (a.RequiresGrad) AccumulateBroadcast(a, dy, adopt: adoptA);
    });

    public static Tensor Sub(Tensor a, Tensor b) => BinaryOp<SubOp>("Sub", a, b, static (a, b, dy) =>
    {
        // y = a − b  =>  da += dy, db −= dy
        if (b.RequiresGrad) AccumulateScratch(b, Map<NegOp>(dy));
        if (a.RequiresGrad) AccumulateBroadcast(a, dy, adopt: true);
    });

    public static Tensor Mul(Tensor a, Tensor b) => BinaryOp<MulOp>("Mul", a, b, static (a, b, dy) =>
    {
        // y = a · b  =>  da += dy · b, db += dy · a
        if (a.RequiresGrad) AccumulateProduct<MulOp>(a, dy, b);
        if (b.RequiresGrad) AccumulateProduct<MulOp>(b, dy, a);
    });

    public static Tensor Div(Tensor a, Tensor b) => BinaryOp<DivOp>("Div", a, b, static (a, b, dy) =>
    {
        // y = a / b  =>  da += dy / b, db += −dy · a / b²
        if (a.RequiresGrad) AccumulateProduct<DivOp>(a, dy, b);
        if (b.RequiresGrad)
        {
            Tensor num = Raw<MulOp>(dy, a), den = Raw<MulOp>(b, b), q = Raw<DivOp>(num, den);
            num.ReleaseScratch(); den.ReleaseScratch();
            var negQ = Map<NegOp>(q);
            q.ReleaseScratch();
            AccumulateScratch(b, negQ);
        }
    });

    /// <summary>y = scale · x + shift (scalar multiply, add, negate, 1 − x, …).</summary>
    public static Tensor Affine(Tensor x, float scale, float shift)
    {
        x = x.Contiguous();
        var y = Tensor.Uninitialized(x.Shape);
        fixed (float* px = x.Data, py = y.Data)
            AffineKernel(px, py, x.Count, scale, shift);
        return Graph.Record("Affine", y, x, dy =>
        {
            // y = s·x + c  =>  dx += s · dy
            Binary.AxpyInPlace(x.GradData(), scale, dy.Data);
        });
    }

    static void AffineKernel(float* x, float* y, int n, float scale, float shift)
    {
        var vs = Vector256.Create(scale);
        var vc = Vector256.Create(shift);
        int i = 0;
        for (; i + 8 <= n; i += 8) Vector256.FusedMultiplyAdd(Vector256.Load(x + i), vs, vc).Store(y + i);
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i], scale, shift);
    }

    public static Tensor Exp(Tensor x) => Unary<ExpOp>("Exp", x, static (x, y, dy) => Binary.Accumulate<MulOp>(dy.Data, y.Data, x.GradData()));     // dx += dy · y
    public static Tensor Log(Tensor x) => Unary<LogOp>("Log", x, static (x, y, dy) => Binary.Accumulate<DivOp>(dy.Data, x.Data, x.GradData()));     // dx += dy / x
    public static Tensor Sqrt(Tensor x) => Unary<SqrtOp>("Sqrt", x, static (x, y, dy) => Binary.Accumulate<SqrtGradOp>(dy.Data, y.Data, x.GradData()));
    public static Tensor Tanh(Tensor x) => Unary<TanhOp>("Tanh", x, static (x, y, dy) => Binary.Accumulate<TanhGradOp>(dy.Data, y.Data, x.GradData()));
    public static Tensor Sigmoid(Tensor x) => Unary<SigmoidOp>("Sigmoid", x, static (x, y, dy) => Binary.Accumulate<SigmoidGradOp>(dy.Data, y.Data, x.GradData()));
    public static Tensor Silu(Tensor x) => Unary<SiluOp>("Silu", x, static (x, y, dy) => Binary.Accumulate<SiluGradOp>(dy.Data, x.Data, x.GradData()));
    public static Tensor QuickGelu(Tensor x) => Unary<QuickGeluOp>("QuickGelu", x, static (x, y, dy) => Binary.Accumulate<QuickGeluGradOp>(dy.Data, x.Data, x.GradData()));
    public static Tensor Gelu(Tensor x) => Unary<GeluOp>("Gelu", x, static (x, y, dy) => Binary.Accumulate<GeluGradOp>(dy.Data, x.Data, x.GradData()));

    /// <summary>y = x^p for a scalar exponent.</summary>
    public static Tensor Pow(Tensor x, float p)
    {
        x = x.Contiguous();
        var y = Tensor.Uninitialized(x.Shape);
        var xs = x.Data; var ys = y.Data;
        for (int i = 0; i < xs.Length; i++) ys[i] = MathF.Pow(xs[i], p);
        return Graph.Record("Pow", y, x, dy =>
        {
            // y = x^p  =>  dx += p · x^(p−1) · dy
            var g = x.GradData(); var d = dy.Data; var xv = x.Data;
            for (int i = 0; i < g.Length; i++) g[i] += p * MathF.Pow(xv[i], p - 1) * d[i];
        });
    }

    /// <summary>y = min(max(x, lo), hi); the gradient passes where lo ≤ x ≤ hi (as PyTorch).</summary>
    public static Tensor Clamp(Tensor x, float lo, float hi)
    {
        if (lo > hi) throw new ArgumentException($"Clamp: min {lo} is greater than max {hi}");
        x = x.Contiguous();
        var y = Tensor.Uninitialized(x.Shape);
        fixed (float* px = x.Data, py = y.Data)
        {
            int n = x.Count, i = 0;
            var vl = Vector256.Create(lo); var vh = Vector256.Create(hi);
            for (; i + 8 <= n; i += 8) Vector256.Min(Vector256.Max(Vector256.Load(px + i), vl), vh).Store(py + i);
            for (; i < n; i++) py[i] = Math.Min(Math.Max(px[i], lo), hi);
        }
        return Graph.Record("Clamp", y, x, dy =>
        {
            var g = x.GradData(); var d = dy.Data; var xv = x.Data;
            for (int i = 0; i < g.Length; i++) if (xv[i] >= lo && xv[i] <= hi) g[i] += d[i];
        });
    }

    /// <summary>y = cond ? a : b, elementwise with broadcasting; cond is nonzero for true and gets no gradient.</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b)
    {
        var shape = ShapeUtil.Broadcast(ShapeUtil.Broadcast(cond.ShapeSpan, a.ShapeSpan, "Where"), b.ShapeSpan, "Where");
        var c = BroadcastTo(cond.Detach(), shape); var av = BroadcastTo(a.Detach(), shape); var bv = BroadcastTo(b.Detach(), shape);
        var y = Tensor.Uninitialized(shape);
        {
            var cs = c.Data; var xa = av.Data; var xb = bv.Data; var ys = y.Data;
            for (int i = 0; i < ys.Length; i++) ys[i] = cs[i] != 0 ? xa[i] : xb[i];
        }
        return Graph.Record("Where", y, a, b, dy =>
        {
            var d = dy.Data; var cs = c.Data;
            if (a.RequiresGrad) { var ga = Tensor.Uninitialized(shape); var g = ga.Data; for (int i = 0; i < g.Length; i++) g[i] = cs[i] != 0 ? d[i] : 0f; AccumulateScratch(a, ga); }
            if (b.RequiresGrad) { var gb = Tensor.Uninitialized(shape); var g = gb.Data; for (int i = 0; i < g.Length; i++) g[i] = cs[i] != 0 ? 0f : d[i]; AccumulateScratch(b, gb); }
        });
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    static Tensor Unary<TOp>(string name, Tensor x, Action<Tensor, Tensor, Tensor> backward) where TOp : struct, IUnaryOp
    {
        x = x.Contiguous();
        var y = Map<TOp>(x);
        return Graph.Record(name, y, x, dy => backward(x, y, dy));
    }

    /// <summary>Applies a unary kernel with no graph.</summary>
    internal static Tensor Map<TOp>(Tensor x) where TOp : struct, IUnaryOp
    {
        var y = Tensor.Uninitialized(x.Shape);
        Kernels.Unary.Map<TOp>(x.Contiguous().Data, y.Data);
        return y;
    }

    static Tensor BinaryOp<TOp>(string name, Tensor a, Tensor b, Action<Tensor, Tensor, Tensor> backward) where TOp : struct, IBinaryOp
    {
        a = a.Contiguous(); b = b.Contiguous();
        var y = Raw<TOp>(a, b, name);
        return Graph.Record(name, y, a, b, dy => backward(a, b, dy));
    }

    /// <summary>op(a, b) with broadcasting and no graph.</summary>
    internal static Tensor Raw<TOp>(Tensor a, Tensor b, string name = "op") where TOp : struct, IBinaryOp
    {
        a = a.IsContiguous ? a : a.Detach().Contiguous();
        b = b.IsContiguous ? b : b.Detach().Contiguous();
        if (ShapeUtil.Equal(a.ShapeSpan, b.ShapeSpan))
        {
            var y = Tensor.Uninitialized(a.Shape);
            Binary.Map<TOp>(a.Data, b.Data, y.Data);
            return y;
        }
        var shape = ShapeUtil.Broadcast(a.ShapeSpan, b.ShapeSpan, name);
        var r = Tensor.Uninitialized(shape);
        if (b.Count == 1 && r.Count == a.Count) { Binary.MapScalarB<TOp>(a.Data, b.Data[0], r.Data); return r; }
        if (a.Count == 1 && r.Count == b.Count) { Binary.MapScalarA<TOp>(a.Data[0], b.Data, r.Data); return r; }
        var sa = BroadcastStrides(a, shape); var sb = BroadcastStrides(b, shape);
        fixed (float* pa = a.Data, pb = b.Data, pr = r.Data)
            Binary.Broadcast<TOp>(pa, sa, pb, sb, shape, pr);
        return r;
    }

    /// <summary>Strides of a contiguous tensor seen through the broadcast shape (0 along broadcast axes).</summary>
    internal static int[] BroadcastStrides(Tensor t, ReadOnlySpan<int> shape)
    {
        var own = ShapeUtil.ContiguousStrides(t.ShapeSpan);
        var r = new int[shape.Length];
        int lead = shape.Length - t.Rank;
        for (int i = 0; i < t.Rank; i++)
            r[lead + i] = t.ShapeSpan[i] == 1 && shape[lead + i] != 1 ? 0 : own[i];
        return r;
    }

    /// <summary>A contiguous copy of t broadcast to shape (no graph).</summary>
    internal static Tensor BroadcastTo(Tensor t, int[] shape)
    {
        t = t.IsContiguous ? t : t.Detach().Contiguous();
        if (ShapeUtil.Equal(t.ShapeSpan, shape)) return t;
        var view = Tensor.ViewOf(t, t.Offset, shape, BroadcastStrides(t, shape));
        return view.Contiguous();
    }

    /// <summary>t.Grad += g summed over the axes along which t was broadcast to g's shape. With adopt, a same-shape
    /// g may become t's gradient buffer itself (see Tensor.AdoptOrAccumulateGrad): g must not be used after.</summary>
    internal static void AccumulateBroadcast(Tensor t, Tensor g, bool adopt = false)
    {
        if (ShapeUtil.Equal(t.ShapeSpan, g.ShapeSpan))
        {
            if (adopt) t.AdoptOrAccumulateGrad(g);
            else t.AccumulateGrad(g.Data);
            return;
        }
        t.GradData();
        Strided.ScatterAdd(g.Data, t.Grad!.Storage, t.Grad.Offset, g.ShapeSpan, BroadcastStrides(t, g.ShapeSpan));
    }

    /// <summary>AccumulateBroadcast of a temporary made for it, whose storage goes straight back to the pool.</summary>
    static void AccumulateScratch(Tensor t, Tensor temporary)
    {
        AccumulateBroadcast(t, temporary);
        temporary.ReleaseScratch();
    }

    /// <summary>t.Grad += op(dy, other) reduced to t's shape.</summary>
    static void AccumulateProduct<TOp>(Tensor t, Tensor dy, Tensor other) where TOp : struct, IBinaryOp
    {
        if (ShapeUtil.Equal(t.ShapeSpan, dy.ShapeSpan) && ShapeUtil.Equal(other.ShapeSpan, dy.ShapeSpan))
            Binary.Accumulate<TOp>(dy.Data, other.Data, t.GradData());
        else
            AccumulateScratch(t, Raw<TOp>(dy, other));
    }
}

/// <summary>dy / (2·y) for y = √x</summary>
internal readonly struct SqrtGradOp : IBinaryOp
{
    public static float Invoke(float dy, float y) => 0.5f * dy / y;
    public static Vector256<float> Invoke(Vector256<float> dy, Vector256<float> y) => Vector256.Create(0.5f) * dy / y;
}

/// <summary>dy · (1 − y²) for y = tanh x</summary>
internal readonly struct TanhGradOp : IBinaryOp
{
    public static float Invoke(float dy, float y) => dy * (1f - y * y);
    public static Vector256<float> Invoke(Vector256<float> dy, Vector256<float> y) => dy * (Vector256<float>.One - y * y);
}

/// <summary>dy · y · (1 − y) for y = sigmoid x</summary>
internal readonly struct SigmoidGradOp : IBinaryOp
{
    public static float Invoke(float dy, float y) => dy * y * (1f - y);
    public static Vector256<float> Invoke(Vector256<float> dy, Vector256<float> y) => dy * y * (Vector256<float>.One - y);
}

/// <summary>dy · s · (1 + x · (1 − s)), s = sigmoid x: the derivative of x · s</summary>
internal readonly struct SiluGradOp : IBinaryOp
{
    public static float Invoke(float dy, float x)
    {
        float s = 1f / (1f + MathF.Exp(-x));
        return dy * s * (1f + x * (1f - s));
    }
    public static Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x)
    {
        var one = Vector256<float>.One;
        var s = SigmoidOp.Invoke(x);
        return dy * s * (one + x * (one - s));
    }
}

/// <summary>dy · s · (1 + a·x · (1 − s)), s = sigmoid(a·x), a = 1.702: the derivative of x · sigmoid(a·x)</summary>
internal readonly struct QuickGeluGradOp : IBinaryOp
{
    public static float Invoke(float dy, float x)
    {
        float ax = QuickGeluOp.Alpha * x, s = 1f / (1f + MathF.Exp(-ax));
        return dy * s * (1f + ax * (1f - s));
    }
    public static Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x)
    {
        var one = Vector256<float>.One;
        var ax = Vector256.Create(QuickGeluOp.Alpha) * x;
        var s = SigmoidOp.Invoke(ax);
        return dy * s * (one + ax * (one - s));
    }
}

/// <summary>dy · (Φ(x) + x · φ(x)): the derivative of x · Φ(x)</summary>
internal readonly struct GeluGradOp : IBinaryOp
{
    public static float Invoke(float dy, float x)
    {
        double cdf = 0.5 * (1.0 + SpecialFunctions.Erf(x * 0.70710678118654752));
        double pdf = Math.Exp(-0.5 * x * x) * 0.39894228040143268;
        return (float)(dy * (cdf + x * pdf));
    }
    public static Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x)
    {
        var cdf = SpecialFunctions.GeluCdf(x, out var gauss);
        return dy * Vector256.FusedMultiplyAdd(x * gauss, Vector256.Create(0.39894228040143268f), cdf);
    }
}

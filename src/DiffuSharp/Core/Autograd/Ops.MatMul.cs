// Differentiable matrix products on the GEMM kernel: matmul / batched matmul (a transposed view is passed to the
// kernel as a transpose flag, never copied) and linear (x·Wᵀ + b). Backward accumulates straight into the
// gradient buffers with beta = 1.
using System.Runtime.InteropServices;
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>How a (…, R, C) tensor is laid out for the kernel: row-major (ld = C) or as the transpose of a
    /// row-major (…, C, R) block (ld = R), with a uniform batch stride of R·C.</summary>
    readonly record struct GemmOperand(Tensor T, bool Trans, int Ld, long BatchStride);

    static GemmOperand AsGemmOperand(ref Tensor t)
    {
        int r = t.Rank, rows = t.ShapeSpan[r - 2], cols = t.ShapeSpan[r - 1];
        var s = t.StridesSpan;
        bool batchOk = true;
        long expect = (long)rows * cols;
        for (int i = r - 3; i >= 0; i--)
        {
            if (t.ShapeSpan[i] != 1 && s[i] != expect) { batchOk = false; break; }
            expect *= t.ShapeSpan[i];
        }
        if (batchOk && (s[r - 1] == 1 || cols == 1) && (s[r - 2] == cols || rows == 1))
            return new GemmOperand(t, false, Math.Max(cols, 1), (long)rows * cols);
        if (batchOk && (s[r - 2] == 1 || rows == 1) && (s[r - 1] == rows || cols == 1))
            return new GemmOperand(t, true, Math.Max(rows, 1), (long)rows * cols);
        t = t.Contiguous();
        return new GemmOperand(t, false, Math.Max(cols, 1), (long)rows * cols);
    }

    public static Tensor MatMul(Tensor a, Tensor b)
    {
        if (a.Rank < 2 || b.Rank < 2)
            throw new ArgumentException($"MatMul needs tensors of rank 2 or more, got {ShapeUtil.Format(a.ShapeSpan)} and {ShapeUtil.Format(b.ShapeSpan)}");
        int m = a.ShapeSpan[^2], k = a.ShapeSpan[^1], n = b.ShapeSpan[^1];
        if (b.ShapeSpan[^2] != k)
            throw new ArgumentException($"MatMul: inner dimensions differ: {ShapeUtil.Format(a.ShapeSpan)} @ {ShapeUtil.Format(b.ShapeSpan)} ({k} vs {b.ShapeSpan[^2]})");
        int[] batchShape;
        if (b.Rank == 2) batchShape = a.ShapeSpan[..^2].ToArray();
        else if (a.Rank == 2) batchShape = b.ShapeSpan[..^2].ToArray();
        else if (ShapeUtil.Equal(a.ShapeSpan[..^2], b.ShapeSpan[..^2])) batchShape = a.ShapeSpan[..^2].ToArray();
        else throw new ArgumentException($"MatMul: batch dimensions differ: {ShapeUtil.Format(a.ShapeSpan)} @ {ShapeUtil.Format(b.ShapeSpan)}");
        int batch = ShapeUtil.Count(batchShape);

        var oa = AsGemmOperand(ref a);
        var ob = AsGemmOperand(ref b);
        var y = Tensor.Uninitialized([.. batchShape, m, n]);                // beta = 0 below writes every element
        long sa = a.Rank == 2 ? 0 : oa.BatchStride, sb = b.Rank == 2 ? 0 : ob.BatchStride;
        // A row-major a against a shared 2-D b is one tall product: fold the batch into M.
        bool fold = sb == 0 && !oa.Trans && batch > 1;
        fixed (float* pa = a.Storage, pb = b.Storage, py = y.Storage)
        {
            if (fold || batch == 1)
                Gemm.Sgemm(oa.Trans, ob.Trans, m * batch, n, k, pa + a.Offset, oa.Ld, pb + b.Offset, ob.Ld, 0f, py, n);
            else
                Gemm.SgemmBatched(batch, oa.Trans, ob.Trans, m, n, k, pa + a.Offset, oa.Ld, sa, pb + b.Offset, ob.Ld, sb, 0f, py, n, (long)m * n);
        }
        Tensor ta = a, tb = b;
        return Graph.Record("MatMul", y, ta, tb, dy =>
        {
            fixed (float* pa = ta.Storage, pb = tb.Storage, pd = dy.Data)
            {
                float* A = pa + ta.Offset, B = pb + tb.Offset;
                if (ta.RequiresGrad)
                {
                    // y = A·B  =>  dA += dy·Bᵀ   (dA: (…, m, k), contiguous)
                    fixed (float* pg = ta.GradData())
                    {
                        if (sb == 0 && batch > 1)
                            Gemm.Sgemm(false, !ob.Trans, m * batch, k, n, pd, n, B, ob.Ld, 1f, pg, k);
                        else if (sa == 0 && batch > 1)   // a shared 2-D a: accumulate over the batch in order
                            for (int i = 0; i < batch; i++)
                                Gemm.Sgemm(false, !ob.Trans, m, k, n, pd + (long)i * m * n, n, B + i * sb, ob.Ld, 1f, pg, k);
                        else
                            Gemm.SgemmBatched(batch, false, !ob.Trans, m, k, n, pd, n, (long)m * n, B, ob.Ld, sb, 1f, pg, k, (long)m * k);
                    }
                }
                if (tb.RequiresGrad)
                {
                    // dB += Aᵀ·dy   (dB: (…, k, n), contiguous)
                    fixed (float* pg = tb.GradData())
                    {
                        if (fold)
                            Gemm.Sgemm(true, false, k, n, m * batch, A, oa.Ld, pd, n, 1f, pg, n);
                        else if (sb == 0)
                            for (int i = 0; i < batch; i++)
                                Gemm.Sgemm(!oa.Trans, false, k, n, m, A + i * sa, oa.Ld, pd + (long)i * m * n, n, 1f, pg, n);
                        else
                            Gemm.SgemmBatched(batch, !oa.Trans, false, k, n, m, A, oa.Ld, sa, pd, n, (long)m * n, 1f, pg, n, (long)k * n);
                    }
                }
            }
        });
    }

    /// <summary>y_i = x·W_iᵀ + b_i for each weight without gradients, when every weight's storage is in
    /// <see cref="Gemm.LinearPrepacked(int, int, float*, ReadOnlySpan{Gemm.PrepackedProduct})"/>'s layout
    /// (NN.Linear.PackWeightForInference): one product, x packed once. Null when one is not (any more), for
    /// <see cref="Linear"/> to take over. Each output has the bits of <see cref="Linear"/> on its unpacked weight.</summary>
    public static Tensor[]? LinearPrepacked(Tensor x, ReadOnlySpan<Tensor> weights, ReadOnlySpan<Tensor?> biases)
    {
        if (GradMode.IsEnabled || weights.Length == 0 || biases.Length != weights.Length) return null;
        int inF = weights[0].ShapeSpan[1];
        foreach (var w in weights)
            if (!w.HasPackedLayout || w.ShapeSpan[1] != inF) return null;
        if (x.Rank < 1 || x.ShapeSpan[^1] != inF) return null;               // Linear says what is wrong
        x = x.Contiguous();
        int rows = x.Count / Math.Max(inF, 1), count = weights.Length, held = 0;
        var ys = new Tensor[count];
        var pins = new List<GCHandle>(3 * count + 1);
        var products = new Gemm.PrepackedProduct[count];
        float* Pin(float[] array, int offset)
        {
            var h = GCHandle.Alloc(array, GCHandleType.Pinned);
            pins.Add(h);
            return (float*)h.AddrOfPinnedObject() + offset;
        }
        try
        {
            float* px = Pin(x.Storage, x.Offset);
            for (int i = 0; i < count; i++)
            {
                var storage = weights[i].EnterPackedLayout();
                if (storage is null) return null;
                held++;
                int outF = weights[i].ShapeSpan[0];
                var shape = x.Shape; shape[^1] = outF;
                ys[i] = Tensor.Uninitialized(shape);                         // the product writes every element
                var bias = biases[i]?.Contiguous();
                products[i] = new Gemm.PrepackedProduct(outF, Pin(storage, weights[i].Offset),
                    bias is null ? null : Pin(bias.Storage, bias.Offset), Pin(ys[i].Storage, ys[i].Offset));
            }
            Gemm.LinearPrepacked(rows, inF, px, products);
        }
        finally
        {
            for (int i = 0; i < held; i++) weights[i].ExitPackedLayout();
            foreach (var h in pins) h.Free();
        }
        for (int i = 0; i < count; i++)
            ys[i] = Graph.Record("Linear", ys[i], x, _ => throw new InvalidOperationException("a prepacked Linear has no backward"));
        return ys;
    }

    /// <summary>y = x·Wᵀ + b. x: (…, in), weight: (out, in), bias: (out) or null.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (weight.Rank != 2) throw new ArgumentException($"Linear: weight must be (out, in), got {ShapeUtil.Format(weight.ShapeSpan)}");
        int outF = weight.ShapeSpan[0], inF = weight.ShapeSpan[1];
        if (x.Rank < 1 || x.ShapeSpan[^1] != inF)
            throw new ArgumentException($"Linear expects input (…, {inF}), got {ShapeUtil.Format(x.ShapeSpan)} (weight {ShapeUtil.Format(weight.ShapeSpan)})");
        if (bias is not null && (bias.Rank != 1 || bias.ShapeSpan[0] != outF))
            throw new ArgumentException($"Linear: bias must be ({outF}), got {ShapeUtil.Format(bias.ShapeSpan)}");
        x = x.Contiguous(); weight = weight.Contiguous(); bias = bias?.Contiguous();
        int rows = x.Count / Math.Max(inF, 1);
        var shape = x.Shape; shape[^1] = outF;
        var y = Tensor.Uninitialized(shape);                                 // beta = 0 below writes every element
        fixed (float* px = x.Data, pw = weight.Data, py = y.Data, pb = bias is null ? null : bias.Data)
            Gemm.Linear(rows, outF, inF, px, pw, pb, py);
        Tensor[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        return Graph.Record("Linear", y, inputs, dy =>
        {
            fixed (float* px = x.Data, pw = weight.Data, pd = dy.Data)
            {
                if (x.RequiresGrad)   // dx += dy·W
                    fixed (float* pg = x.GradData()) Gemm.Sgemm(false, false, rows, inF, outF, pd, outF, pw, inF, 1f, pg, inF);
                if (weight.RequiresGrad)   // dW += dyᵀ·x
                    fixed (float* pg = weight.GradData()) Gemm.Sgemm(true, false, outF, inF, rows, pd, outF, px, inF, 1f, pg, inF);
            }
            if (bias is not null && bias.RequiresGrad)   // db += Σ_rows dy
            {
                var g = bias.GradData(); var d = dy.Data;
                for (int r = 0; r < rows; r++) Binary.AddInPlace(g, d.Slice(r * outF, outF));
            }
        });
    }
}

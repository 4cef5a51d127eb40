// Copies between strided views and contiguous buffers: the one kernel behind Contiguous(), ToArray() and the
// backward of every view op (permute, slice, expand). Dimensions that are contiguous in both layouts are merged
// first, so the inner loop is as long as possible and usually unit-stride.
namespace DiffuSharp.Kernels;

internal static class Strided
{
    /// <summary>dst[i] = src[view index i] for the row-major enumeration of the view.</summary>
    public static void Gather(float[] src, int offset, ReadOnlySpan<int> shape, ReadOnlySpan<int> strides, Span<float> dst)
        => Walk<GatherOp>(src, offset, shape, strides, dst);

    /// <summary>dst[i] += src[view index i].</summary>
    public static void GatherAdd(float[] src, int offset, ReadOnlySpan<int> shape, ReadOnlySpan<int> strides, Span<float> dst)
        => Walk<GatherAddOp>(src, offset, shape, strides, dst);

    /// <summary>view[i] += src[i] (dst strides must not alias two indices onto one element unless accumulation is wanted:
    /// with a zero stride the adds happen sequentially, so an expand's gradient sums correctly).</summary>
    public static void ScatterAdd(ReadOnlySpan<float> src, float[] dst, int offset, ReadOnlySpan<int> shape, ReadOnlySpan<int> strides)
        => Walk<ScatterAddOp>(dst, offset, shape, strides, MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(src), src.Length));

    /// <summary>dst[o·dstStride + i] = (or +=) src[o·srcStride + i] for o &lt; outer, i &lt; len: block copies (a concat and
    /// its backward), split over threads by block.</summary>
    public static unsafe void CopyBlocks(float* src, long srcStride, float* dst, long dstStride, int outer, int len, bool accumulate)
    {
        if (outer <= 0 || len <= 0) return;
        var work = new BlockWork(src, srcStride, dst, dstStride, len, accumulate);
        if ((long)outer * len < Unary.ParallelThreshold) work.Invoke(0, outer);
        else ParallelFor.RunRange(outer, work, Math.Max(1, Unary.ParallelThreshold / 2 / len));
    }

    readonly unsafe struct BlockWork(float* src, long srcStride, float* dst, long dstStride, int len, bool accumulate) : IRangeWorkItem
    {
        public void Invoke(int begin, int end)
        {
            for (int o = begin; o < end; o++)
            {
                var from = new ReadOnlySpan<float>(src + o * srcStride, len);
                var to = new Span<float>(dst + o * dstStride, len);
                if (accumulate) Binary.AddInPlace(to, from);
                else from.CopyTo(to);
            }
        }
    }

    interface IStridedOp { static abstract void Run(ref float strided, int stride, ref float dense, int n); }

    readonly struct GatherOp : IStridedOp
    {
        public static void Run(ref float s, int stride, ref float d, int n)
        {
            if (stride == 1) MemoryMarshal.CreateReadOnlySpan(ref s, n).CopyTo(MemoryMarshal.CreateSpan(ref d, n));
            else for (int i = 0; i < n; i++) Unsafe.Add(ref d, i) = Unsafe.Add(ref s, (nint)i * stride);
        }
    }

    readonly struct GatherAddOp : IStridedOp
    {
        public static void Run(ref float s, int stride, ref float d, int n)
        {
            if (stride == 1) Binary.AddInPlace(MemoryMarshal.CreateSpan(ref d, n), MemoryMarshal.CreateReadOnlySpan(ref s, n));
            else for (int i = 0; i < n; i++) Unsafe.Add(ref d, i) += Unsafe.Add(ref s, (nint)i * stride);
        }
    }

    readonly struct ScatterAddOp : IStridedOp
    {
        public static void Run(ref float s, int stride, ref float d, int n)
        {
            if (stride == 1) Binary.AddInPlace(MemoryMarshal.CreateSpan(ref s, n), MemoryMarshal.CreateReadOnlySpan(ref d, n));
            else if (stride == 0) s += (float)RowSum(ref d, n);   // an expand's gradient: the run summed into one element
            else for (int i = 0; i < n; i++) Unsafe.Add(ref s, (nint)i * stride) += Unsafe.Add(ref d, i);
        }
    }

    /// <summary>Σ of n floats in double (long sums stay exact to float precision), with SIMD.</summary>
    static unsafe double RowSum(ref float d, int n)
    {
        fixed (float* p = &d) return Norm.Sum(p, n);
    }

    static void Walk<TOp>(float[] strided, int offset, ReadOnlySpan<int> shape, ReadOnlySpan<int> strides, Span<float> dense) where TOp : struct, IStridedOp
    {
        int count = ShapeUtil.Count(shape);
        if (count == 0) return;
        // Merge dimension i into i+1 when stride[i] == stride[i+1] * shape[i+1]; drop size-1 dimensions.
        Span<int> sh = stackalloc int[Math.Max(shape.Length, 1)];
        Span<int> st = stackalloc int[Math.Max(shape.Length, 1)];
        int r = 0;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue;
            if (r > 0 && st[r - 1] == strides[i] * shape[i]) { sh[r - 1] *= shape[i]; st[r - 1] = strides[i]; }
            else { sh[r] = shape[i]; st[r] = strides[i]; r++; }
        }
        if (r == 0) { sh[0] = 1; st[0] = 1; r = 1; }
        int inner = sh[r - 1], innerStride = st[r - 1];
        int outer = count / inner;
        Span<int> idx = stackalloc int[r];
        ref float s0 = ref strided[0];
        ref float d0 = ref MemoryMarshal.GetReference(dense);
        int pos = offset;
        for (int o = 0; o < outer; o++)
        {
            TOp.Run(ref Unsafe.Add(ref s0, pos), innerStride, ref Unsafe.Add(ref d0, (nint)o * inner), inner);
            // Advance the outer multi-index (odometer), updating pos incrementally.
            for (int k = r - 2; k >= 0; k--)
            {
                pos += st[k];
                if (++idx[k] < sh[k]) break;
                pos -= st[k] * sh[k];
                idx[k] = 0;
            }
        }
    }
}

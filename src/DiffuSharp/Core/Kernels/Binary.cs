// Elementwise binary kernels: equal-length maps, scalar-operand maps, accumulating maps for backward (dst += op),
// and a broadcasting driver that merges dimensions and picks a unit-stride or scalar inner loop.
namespace DiffuSharp.Kernels;

internal interface IBinaryOp
{
    static abstract float Invoke(float a, float b);
    static abstract Vector256<float> Invoke(Vector256<float> a, Vector256<float> b);
}

/// <summary>a + b</summary>
internal readonly struct AddOp : IBinaryOp
{
    public static float Invoke(float a, float b) => a + b;
    public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a + b;
}

/// <summary>a − b</summary>
internal readonly struct SubOp : IBinaryOp
{
    public static float Invoke(float a, float b) => a - b;
    public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a - b;
}

/// <summary>a · b</summary>
internal readonly struct MulOp : IBinaryOp
{
    public static float Invoke(float a, float b) => a * b;
    public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a * b;
}

/// <summary>a / b</summary>
internal readonly struct DivOp : IBinaryOp
{
    public static float Invoke(float a, float b) => a / b;
    public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a / b;
}

internal static unsafe class Binary
{
    /// <summary>dst[i] = op(a[i], b[i]).</summary>
    public static void Map<TOp>(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> dst) where TOp : struct, IBinaryOp
    {
        if (a.Length != b.Length || dst.Length < a.Length) throw new ArgumentException("Binary.Map: length mismatch.");
        fixed (float* pa = a, pb = b, pd = dst) Run(new MapWork<TOp, Copy>(pa, 1, pb, 1, pd), a.Length);
    }

    /// <summary>dst[i] += op(a[i], b[i]) (backward accumulation).</summary>
    public static void Accumulate<TOp>(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> dst) where TOp : struct, IBinaryOp
    {
        if (a.Length != b.Length || dst.Length < a.Length) throw new ArgumentException("Binary.Accumulate: length mismatch.");
        fixed (float* pa = a, pb = b, pd = dst) Run(new MapWork<TOp, Add>(pa, 1, pb, 1, pd), a.Length);
    }

    /// <summary>dst[i] = op(a[i], b) for a scalar b.</summary>
    public static void MapScalarB<TOp>(ReadOnlySpan<float> a, float b, Span<float> dst) where TOp : struct, IBinaryOp
    {
        fixed (float* pa = a, pd = dst) Run(new MapWork<TOp, Copy>(pa, 1, &b, 0, pd), a.Length);
    }

    /// <summary>dst[i] = op(a, b[i]) for a scalar a.</summary>
    public static void MapScalarA<TOp>(float a, ReadOnlySpan<float> b, Span<float> dst) where TOp : struct, IBinaryOp
    {
        fixed (float* pb = b, pd = dst) Run(new MapWork<TOp, Copy>(&a, 0, pb, 1, pd), b.Length);
    }

    /// <summary>dst += src.</summary>
    public static void AddInPlace(Span<float> dst, ReadOnlySpan<float> src)
    {
        if (dst.Length < src.Length) throw new ArgumentException("Binary.AddInPlace: destination is too short.");
        fixed (float* ps = src, pd = dst) Run(new MapWork<AddOp, Copy>(pd, 1, ps, 1, pd), src.Length);
    }

    /// <summary>dst = src, split over threads for long inputs (a parallel memcpy).</summary>
    public static void CopyInto(ReadOnlySpan<float> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("Binary.CopyInto: destination is too short.");
        fixed (float* ps = src, pd = dst) Run(new CopyWork(ps, pd), src.Length);
    }

    readonly struct CopyWork(float* src, float* dst) : IRangeWorkItem
    {
        public void Invoke(int begin, int end) => new ReadOnlySpan<float>(src + begin, end - begin).CopyTo(new Span<float>(dst + begin, end - begin));
    }

    /// <summary>dst += alpha · src.</summary>
    public static void AxpyInPlace(Span<float> dst, float alpha, ReadOnlySpan<float> src)
    {
        if (dst.Length < src.Length) throw new ArgumentException("Binary.AxpyInPlace: destination is too short.");
        fixed (float* ps = src, pd = dst) Run(new MapWork<MulOp, Add>(ps, 1, &alpha, 0, pd), src.Length);
    }

    /// <summary>Scalar loop, for tests.</summary>
    internal static void Reference<TOp>(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> dst) where TOp : struct, IBinaryOp
    {
        for (int i = 0; i < a.Length; i++) dst[i] = TOp.Invoke(a[i], b[i]);
    }

    /// <summary>Broadcasting map: out has shape <paramref name="shape"/>; aStrides/bStrides are the operands' strides
    /// over that shape (0 along broadcast dimensions).</summary>
    public static void Broadcast<TOp>(float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, ReadOnlySpan<int> shape, float* dst)
        where TOp : struct, IBinaryOp
    {
        int count = ShapeUtil.Count(shape);
        if (count == 0) return;
        // Merge adjacent dims when both operands are contiguous across them; drop size-1 dims.
        var sh = new int[shape.Length + 1];
        var sa = new int[shape.Length + 1];
        var sb = new int[shape.Length + 1];
        int r = 0;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue;
            if (r > 0 && sa[r - 1] == aStrides[i] * shape[i] && sb[r - 1] == bStrides[i] * shape[i])
            { sh[r - 1] *= shape[i]; sa[r - 1] = aStrides[i]; sb[r - 1] = bStrides[i]; }
            else { sh[r] = shape[i]; sa[r] = aStrides[i]; sb[r] = bStrides[i]; r++; }
        }
        if (r == 0) { sh[0] = 1; r = 1; }
        int inner = sh[r - 1];
        int rows = count / inner;
        var work = new BroadcastWork<TOp>(a, b, dst, sh, sa, sb, r);
        if (count < Unary.ParallelThreshold || rows == 1) work.Invoke(0, rows);
        else ParallelFor.RunRange(rows, work, Math.Max(1, Unary.ParallelThreshold / 2 / inner));
    }

    static void Run<T>(T work, int n) where T : struct, IRangeWorkItem
    {
        if (n < Unary.ParallelThreshold) work.Invoke(0, n);
        else ParallelFor.RunRangeAligned(n, work, Unary.ParallelThreshold / 2, Vector256<float>.Count);
    }

    interface IStore { static abstract void Store(float* dst, Vector256<float> v); static abstract void Store(float* dst, float v); }
    readonly struct Copy : IStore
    {
        public static void Store(float* dst, Vector256<float> v) => v.Store(dst);
        public static void Store(float* dst, float v) => *dst = v;
    }
    readonly struct Add : IStore
    {
        public static void Store(float* dst, Vector256<float> v) => (Vector256.Load(dst) + v).Store(dst);
        public static void Store(float* dst, float v) => *dst += v;
    }

    /// <summary>Inner loop with unit or zero strides (sa, sb ∈ {0, 1}).</summary>
    readonly struct MapWork<TOp, TStore>(float* a, int sa, float* b, int sb, float* dst) : IRangeWorkItem
        where TOp : struct, IBinaryOp where TStore : struct, IStore
    {
        public void Invoke(int begin, int end) => Inner<TOp, TStore>(a + (nint)begin * sa, sa, b + (nint)begin * sb, sb, dst + begin, end - begin);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Inner<TOp, TStore>(float* a, int sa, float* b, int sb, float* dst, int n) where TOp : struct, IBinaryOp where TStore : struct, IStore
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated && (sa | sb) <= 1)
        {
            if (sa == 1 && sb == 1)
                for (; i + 8 <= n; i += 8) TStore.Store(dst + i, TOp.Invoke(Vector256.Load(a + i), Vector256.Load(b + i)));
            else if (sa == 1)
            {
                var vb = Vector256.Create(*b);
                for (; i + 8 <= n; i += 8) TStore.Store(dst + i, TOp.Invoke(Vector256.Load(a + i), vb));
            }
            else if (sb == 1)
            {
                var va = Vector256.Create(*a);
                for (; i + 8 <= n; i += 8) TStore.Store(dst + i, TOp.Invoke(va, Vector256.Load(b + i)));
            }
        }
        for (; i < n; i++) TStore.Store(dst + i, TOp.Invoke(a[(nint)i * sa], b[(nint)i * sb]));
    }

    readonly struct BroadcastWork<TOp>(float* a, float* b, float* dst, int[] sh, int[] sa, int[] sb, int r) : IRangeWorkItem where TOp : struct, IBinaryOp
    {
        public void Invoke(int begin, int end)
        {
            int inner = sh[r - 1];
            Span<int> idx = stackalloc int[r];
            // Multi-index of row `begin` over the outer dims, and the operands' offsets there.
            long pa = 0, pb = 0;
            int rem = begin;
            for (int k = r - 2; k >= 0; k--)
            {
                idx[k] = rem % sh[k];
                rem /= sh[k];
                pa += (long)idx[k] * sa[k];
                pb += (long)idx[k] * sb[k];
            }
            for (int row = begin; row < end; row++)
            {
                Inner<TOp, Copy>(a + pa, sa[r - 1], b + pb, sb[r - 1], dst + (long)row * inner, inner);
                for (int k = r - 2; k >= 0; k--)
                {
                    pa += sa[k]; pb += sb[k];
                    if (++idx[k] < sh[k]) break;
                    pa -= (long)sa[k] * sh[k]; pb -= (long)sb[k] * sh[k];
                    idx[k] = 0;
                }
            }
        }
    }
}

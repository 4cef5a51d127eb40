// Tests for Gemm.Sgemm / SgemmBatched against the double-precision Reference: every transpose combination,
// edge sizes, padded leading dimensions, beta 0 over NaN and beta 1, every microkernel with tiny blocking so
// every blocking edge runs, batched strides, and bit-identical results on 1 and 2 threads.
using DiffuSharp.Kernels;
using Xunit;

namespace DiffuSharp.Tests.Kernels;

[Collection("Parallelism")]
public unsafe class GemmTests
{
    static readonly int[] Sizes = [0, 1, 2, 5, 7, 16, 17, 33, 65, 257];

    // Tolerance: each element is a float32 sum of k products, rounded ~k times with unit roundoff u = 2^-24 ≈ 6e-8.
    // With mean-zero random inputs the rounding errors are independent, so the relative error of C is about
    // sqrt(k)·u: ≈ 1e-6 at k = 257 (worst observed is well below). 1e-5 leaves 10× margin, while any wrong index,
    // dropped K block or missed beta shows up as an error of order 1.
    const double Tolerance = 1e-5;

    /// <summary>A matrix in a padded buffer: rows × cols at row stride ld, padding filled with a sentinel.</summary>
    sealed class Mat
    {
        public readonly float[] Data;
        public readonly int Rows, Cols, Ld;

        public Mat(int rows, int cols, int ld, Random rng, float fill = float.NaN, bool random = true)
        {
            Rows = rows; Cols = cols; Ld = ld;
            Data = new float[Math.Max(1, rows * ld)];
            Array.Fill(Data, fill);
            if (random)
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++)
                        Data[i * ld + j] = (float)(rng.NextDouble() * 2 - 1);
        }

        public Mat Clone() => new(this);
        Mat(Mat other) { Rows = other.Rows; Cols = other.Cols; Ld = other.Ld; Data = (float[])other.Data.Clone(); }
    }

    delegate void GemmCall(float* a, int lda, float* b, int ldb, float* c, int ldc);

    sealed record Case(bool TransA, bool TransB, int M, int N, int K, int PadA, int PadB, int PadC, float Beta, int Seed)
    {
        public override string ToString() =>
            $"transA={TransA} transB={TransB} m={M} n={N} k={K} pads=({PadA},{PadB},{PadC}) beta={Beta}";
    }

    /// <summary>Runs <paramref name="gemm"/> and Reference on the same inputs; asserts the relative Frobenius error and
    /// that C's padding columns are untouched. Returns the kernel's C for bitwise comparisons.</summary>
    static float[] Check(Case t, GemmCall gemm)
    {
        var rng = new Random(t.Seed);
        var a = t.TransA ? new Mat(t.K, t.M, t.M + t.PadA, rng) : new Mat(t.M, t.K, t.K + t.PadA, rng);
        var b = t.TransB ? new Mat(t.N, t.K, t.K + t.PadB, rng) : new Mat(t.K, t.N, t.N + t.PadB, rng);
        // beta 0: C starts as NaN and must be overwritten; beta 1: C starts random and is accumulated into.
        var c = new Mat(t.M, t.N, t.N + t.PadC, rng, float.NaN, random: t.Beta != 0);
        var expected = c.Clone();
        fixed (float* pa = a.Data, pb = b.Data, pc = c.Data, pe = expected.Data)
        {
            gemm(pa, a.Ld, pb, b.Ld, pc, c.Ld);
            Gemm.Reference(t.TransA, t.TransB, t.M, t.N, t.K, pa, a.Ld, pb, b.Ld, t.Beta, pe, c.Ld);
        }
        double err = 0, norm = 0;
        for (int i = 0; i < t.M; i++)
        {
            for (int j = 0; j < t.N; j++)
            {
                double e = expected.Data[i * c.Ld + j], d = c.Data[i * c.Ld + j] - e;
                err += d * d;
                norm += e * e;
            }
            for (int j = t.N; j < c.Ld; j++)
                Assert.True(float.IsNaN(c.Data[i * c.Ld + j]), $"{t}: wrote C[{i}, {j}] outside the n columns");
        }
        double rel = Math.Sqrt(err) / Math.Max(Math.Sqrt(norm), 1e-30);
        Assert.True(double.IsFinite(err) && (norm == 0 ? err == 0 : rel <= Tolerance), $"{t}: relative Frobenius error {rel:E2}");
        return c.Data;
    }

    static float[] CheckSgemm(Case t) => Check(t, (a, lda, b, ldb, c, ldc) =>
        Gemm.Sgemm(t.TransA, t.TransB, t.M, t.N, t.K, a, lda, b, ldb, t.Beta, c, ldc));

    public static IEnumerable<object[]> TransposesAndM() =>
        from ta in new[] { false, true } from tb in new[] { false, true } from m in Sizes select new object[] { ta, tb, m };

    [Theory, MemberData(nameof(TransposesAndM))]
    public void Sgemm_matches_reference_for_every_size_and_transpose(bool transA, bool transB, int m)
    {
        int seed = 0;
        foreach (int n in Sizes)
            foreach (int k in Sizes)
            {
                // Alternate contiguous and odd leading dimensions, and beta 0 (NaN C) and beta 1.
                int pad = seed % 3 == 0 ? 0 : 1 + seed % 5;
                CheckSgemm(new Case(transA, transB, m, n, k, pad, pad + 2, pad + 1, seed % 2 == 0 ? 0f : 1f, seed++));
            }
    }

    public static IEnumerable<object[]> KernelsAndTransposes() =>
        from kernel in new[] { nameof(Gemm.KernelKind.Direct), nameof(Gemm.KernelKind.K6x16), nameof(Gemm.KernelKind.K4x24), nameof(Gemm.KernelKind.K8x32), nameof(Gemm.KernelKind.K12x32), nameof(Gemm.KernelKind.Portable) }
        from ta in new[] { false, true } from tb in new[] { false, true } select new object[] { kernel, ta, tb };

    /// <summary>The packed kernels (the unpacked direct path has no shared A to help with).</summary>
    public static IEnumerable<object[]> PackedKernelsAndTransposes() =>
        KernelsAndTransposes().Where(c => (string)c[0] != nameof(Gemm.KernelKind.Direct));

    /// <summary>KC=32, MC=13, NC=40: many K, M and N blocks, ragged last blocks and the pack-A-once path.</summary>
    [Theory, MemberData(nameof(KernelsAndTransposes))]
    public void Every_kernel_with_tiny_blocking_matches_reference(string kernelName, bool transA, bool transB)
    {
        var kernel = Enum.Parse<Gemm.KernelKind>(kernelName);
        var tiny = new Gemm.Blocking(32, 13, 40);
        int seed = 100;
        int[] sizes = [1, 7, 17, 65, 100];
        foreach (int m in sizes)
            foreach (int n in sizes)
                foreach (int k in new[] { 1, 31, 33, 100 })
                {
                    var t = new Case(transA, transB, m, n, k, seed % 2, seed % 3, seed % 4, seed % 2 == 0 ? 0f : 1f, seed++);
                    Check(t, (a, lda, b, ldb, c, ldc) =>
                        Gemm.Run(kernel, tiny, 1, transA, transB, m, n, k, a, lda, 0, b, ldb, 0, t.Beta, c, ldc, 0));
                }
    }

    /// <summary>Column chunks share one packed A (many M, K and N blocks with the tiny blocking, ragged last ones):
    /// the same bits as one thread packing A itself, and the reference.</summary>
    [Theory, MemberData(nameof(KernelsAndTransposes))]
    public void Shared_packed_A_matches_one_thread(string kernelName, bool transA, bool transB)
    {
        var kernel = Enum.Parse<Gemm.KernelKind>(kernelName);
        var tiny = new Gemm.Blocking(32, 13, 40);
        // k = 100: ragged K blocks (25 deep); k = 96: K blocks of 32, whose last 8×8 transposes spill past a panel
        foreach (var (k, beta) in new[] { (100, 0f), (100, 1f), (96, 0f) })
        {
            var t = new Case(transA, transB, 150, 701, k, 1, 2, 3, beta, 21);
            float[] Run(int threads) => WithThreads(threads, () => Check(t, (a, lda, b, ldb, c, ldc) =>
                Gemm.Run(kernel, tiny, 1, transA, transB, t.M, t.N, t.K, a, lda, 0, b, ldb, 0, t.Beta, c, ldc, 0)));
            float[] one = Run(1), two = Run(2);
            Assert.True(one.AsSpan().SequenceEqual(two), $"{kernel} {t}: results differ between 1 and 2 threads");
            using (KernelSwitches.With(s => s with { GemmPackBackwards = true }))   // packing stores that spill past a row block show up here
                Assert.True(one.AsSpan().SequenceEqual(Run(2)), $"{kernel} {t}: row blocks packed last to first differ");
        }
    }

    /// <summary>The owner of one column chunk is slowed down (a thread on a shared core), so the other thread, done
    /// with its own chunk, takes M blocks of the slow one's K blocks: the same bits as one thread, block by block.</summary>
    [Theory, MemberData(nameof(PackedKernelsAndTransposes))]
    public void Helping_threads_give_the_same_bits(string kernelName, bool transA, bool transB)
    {
        var kernel = Enum.Parse<Gemm.KernelKind>(kernelName);
        var tiny = new Gemm.Blocking(32, 13, 40);                     // many M blocks, several NC blocks per chunk
        foreach (var beta in new[] { 0f, 1f })
        {
            var t = new Case(transA, transB, 150, 701, 100, 1, 2, 3, beta, 22);
            float[] Run(int threads) => WithThreads(threads, () => Check(t, (a, lda, b, ldb, c, ldc) =>
                Gemm.Run(kernel, tiny, 1, transA, transB, t.M, t.N, t.K, a, lda, 0, b, ldb, 0, t.Beta, c, ldc, 0)));
            float[] one = Run(1);
            // On a loaded machine the second thread may not get a core while the first sleeps: try a few times until
            // it has helped (every run's bits are checked).
            bool tookBlocks = false;
            for (int attempt = 0; attempt < 8 && !tookBlocks; attempt++)
            {
                long helped = Gemm.HelpedBlocks;
                float[] two;
                using (KernelSwitches.With(s => s with { GemmSlowFirstChunkMs = 1 + attempt }))
                    two = Run(2);
                tookBlocks = Gemm.HelpedBlocks > helped;
                Assert.True(one.AsSpan().SequenceEqual(two), $"{kernel} {t}: helped product differs from one thread");
            }
            Assert.True(tookBlocks, $"{kernel} {t}: no M block was taken by a helping thread in 8 runs");
        }
    }

    [Fact]
    public void K_zero_scales_c_by_beta()
    {
        CheckSgemm(new Case(false, false, 5, 7, 0, 0, 0, 2, 0f, 1));   // NaN C becomes 0
        CheckSgemm(new Case(true, true, 5, 7, 0, 0, 0, 2, 1f, 2));     // C unchanged
    }

    [Theory]
    [InlineData(false, false, 300, 257, 129)]   // N split
    [InlineData(true, true, 300, 257, 129)]
    [InlineData(false, true, 700, 40, 301)]     // M split (m > n), several K blocks
    [InlineData(true, false, 64, 600, 576)]     // A packed once, shared by the column chunks
    [InlineData(false, false, 300, 700, 300)]   // shared packed A of several M and K blocks
    [InlineData(false, true, 3, 22000, 70)]     // direct path, column split
    [InlineData(true, false, 4, 9000, 130)]
    public void Sgemm_is_bit_identical_on_1_and_2_threads(bool transA, bool transB, int m, int n, int k)
    {
        Assert.True((long)m * n * k >= Gemm.ParallelThreshold, "shape too small to take the threaded path");
        foreach (float beta in new[] { 0f, 1f })
        {
            var t = new Case(transA, transB, m, n, k, 1, 3, 2, beta, 7);
            float[] one = WithThreads(1, () => CheckSgemm(t));
            float[] two = WithThreads(2, () => CheckSgemm(t));
            Assert.True(one.AsSpan().SequenceEqual(two), $"{t}: results differ between 1 and 2 threads");
        }
    }

    /// <summary>All FMA paths share K blocks and per-element FMA chains, so a row of C never depends on which path ran.</summary>
    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void Fma_paths_give_identical_bits(bool transA, bool transB)
    {
        var t = new Case(transA, transB, 37, 53, 600, 1, 0, 3, 1f, 11);
        float[] RunWith(Gemm.KernelKind kernel) => Check(t, (a, lda, b, ldb, c, ldc) =>
            Gemm.Run(kernel, Gemm.Blocking.Default, 1, t.TransA, t.TransB, t.M, t.N, t.K, a, lda, 0, b, ldb, 0, t.Beta, c, ldc, 0));
        float[] direct = RunWith(Gemm.KernelKind.Direct);
        foreach (var kernel in new[] { Gemm.KernelKind.K6x16, Gemm.KernelKind.K4x24, Gemm.KernelKind.K8x32, Gemm.KernelKind.K12x32 })
            Assert.True(direct.AsSpan().SequenceEqual(RunWith(kernel)), $"{kernel} differs from the direct path");
    }

    [Theory]
    [InlineData(3, 33, 17, 65)]      // batch not a multiple of the thread count
    [InlineData(4, 170, 200, 130)]   // products split by batch
    [InlineData(1, 260, 150, 120)]   // one product split inside
    [InlineData(2, 5, 7, 0)]         // k = 0: the bias alone
    public void SgemmBatchedBias_gives_the_bits_of_filling_the_bias_then_beta_1(int batch, int m, int n, int k)
    {
        var rng = new Random(batch * 7 + m);
        int lda = k + 1, ldb = n + 2, ldc = n + 3;
        long sa = (long)m * lda + 5, sb = (long)k * ldb + 3, sc = (long)m * ldc + 1;
        float[] a = Random(rng, batch * sa), b = Random(rng, batch * sb), bias = Random(rng, m);
        float[] gaps = Random(rng, batch * sc);                 // what lies between the C blocks must stay
        float[] res = Random(rng, batch * sc);
        foreach (bool withResidual in new[] { false, true })
        {
            float[] Run(int threads, bool fused) => WithThreads(threads, () =>
            {
                float[] c = (float[])gaps.Clone();
                fixed (float* pa = a, pb = b, pc = c, pbias = bias, pr = res)
                {
                    if (fused) Gemm.SgemmBatchedBias(batch, false, false, m, n, k, pa, lda, sa, pb, ldb, sb, pbias, pc, ldc, sc, withResidual ? pr : null);
                    else
                    {
                        for (int i = 0; i < batch; i++)
                            for (int r = 0; r < m; r++) new Span<float>(pc + i * sc + (long)r * ldc, n).Fill(bias[r]);
                        Gemm.SgemmBatched(batch, false, false, m, n, k, pa, lda, sa, pb, ldb, sb, 1f, pc, ldc, sc);
                        if (withResidual)
                            for (int i = 0; i < batch; i++)
                                for (int r = 0; r < m; r++)
                                    for (int j = 0; j < n; j++) pc[i * sc + (long)r * ldc + j] += pr[i * sc + (long)r * ldc + j];
                    }
                }
                return c;
            });
            float[] expected = Run(1, fused: false);
            Assert.True(expected.AsSpan().SequenceEqual(Run(1, fused: true)), $"1 thread: not the bits of fill + beta 1 (residual {withResidual})");
            Assert.True(expected.AsSpan().SequenceEqual(Run(2, fused: true)), $"2 threads: not the bits of fill + beta 1 (residual {withResidual})");
            if (k == 0 && !withResidual) Assert.Equal(bias[m - 1], expected[(long)(batch - 1) * sc + (long)(m - 1) * ldc + n - 1]);
        }
    }

    [Theory]
    [InlineData(3, 33, 17, 65, true, false)]    // batch not a multiple of the thread count, shared A
    [InlineData(4, 65, 70, 33, false, true)]    // shared B
    [InlineData(3, 170, 200, 130, false, false)] // 2 products split by batch, the third split inside
    [InlineData(1, 260, 150, 120, true, true)]  // one product split by rows
    public void SgemmBatched_matches_reference_with_shared_operands(int batch, int m, int n, int k, bool shareA, bool shareB)
    {
        foreach (var (transA, transB) in new[] { (false, false), (true, true), (true, false) })
            foreach (float beta in new[] { 0f, 1f })
            {
                var rng = new Random(batch * 31 + m);
                int lda = (transA ? m : k) + 1, ldb = (transB ? k : n) + 2, ldc = n + 3;
                long sa = shareA ? 0 : (long)(transA ? k : m) * lda + 5;
                long sb = shareB ? 0 : (long)(transB ? n : k) * ldb + 3;
                long sc = (long)m * ldc + 1;
                float[] a = Random(rng, shareA ? sa + (transA ? k : m) * lda : batch * sa);
                float[] b = Random(rng, shareB ? sb + (transB ? n : k) * ldb : batch * sb);
                float[] c = beta == 0 ? Filled(batch * sc, float.NaN) : Random(rng, batch * sc);
                float[] expected = (float[])c.Clone();
                float[] RunBatched(int threads) => WithThreads(threads, () =>
                {
                    float[] result = (float[])c.Clone();
                    fixed (float* pa = a, pb = b, pc = result)
                        Gemm.SgemmBatched(batch, transA, transB, m, n, k, pa, lda, sa, pb, ldb, sb, beta, pc, ldc, sc);
                    return result;
                });
                float[] one = RunBatched(1), two = RunBatched(2);
                Assert.True(one.AsSpan().SequenceEqual(two), "batched results differ between 1 and 2 threads");
                fixed (float* pa = a, pb = b, pe = expected)
                    for (int i = 0; i < batch; i++)
                        Gemm.Reference(transA, transB, m, n, k, pa + i * sa, lda, pb + i * sb, ldb, beta, pe + i * sc, ldc);
                double err = 0, norm = 0;
                for (int i = 0; i < batch; i++)
                    for (int r = 0; r < m; r++)
                        for (int j = 0; j < n; j++)
                        {
                            long at = i * sc + (long)r * ldc + j;
                            err += Math.Pow(two[at] - expected[at], 2);
                            norm += Math.Pow(expected[at], 2);
                        }
                Assert.True(Math.Sqrt(err / norm) <= Tolerance, $"batched transA={transA} transB={transB} beta={beta}: {Math.Sqrt(err / norm):E2}");
                for (long at = 0; at < two.Length; at++)                // gaps between C blocks untouched
                    if (at % sc >= (long)m * ldc || at % sc % ldc >= n)
                        Assert.True(expected[at].Equals(two[at]), $"batched wrote outside C at element {at}");
            }
    }

    public static IEnumerable<object[]> SummedCases() =>
        from kernel in new[] { nameof(Gemm.KernelKind.Auto), nameof(Gemm.KernelKind.Direct), nameof(Gemm.KernelKind.K6x16), nameof(Gemm.KernelKind.K4x24), nameof(Gemm.KernelKind.K8x32), nameof(Gemm.KernelKind.K12x32), nameof(Gemm.KernelKind.Portable) }
        from ta in new[] { false, true } from tb in new[] { false, true } select new object[] { kernel, ta, tb };

    /// <summary>C = beta·C + Σ_e op(A_e)·op(B_e): every kernel, default and tiny blocking, pieces strided apart with gaps.</summary>
    [Theory, MemberData(nameof(SummedCases))]
    public void Summed_products_match_the_sum_of_references(string kernelName, bool transA, bool transB)
    {
        var kernel = Enum.Parse<Gemm.KernelKind>(kernelName);
        int seed = 300;
        foreach (var blocking in new[] { Gemm.Blocking.Default, new Gemm.Blocking(32, 13, 40) })
            foreach (var (m, n, k, count) in new[] { (1, 1, 1, 1), (7, 17, 33, 3), (65, 33, 100, 4), (17, 100, 7, 5), (5, 9, 0, 3), (6, 8, 12, 0) })
                foreach (float beta in new[] { 0f, 1f })
                {
                    var rng = new Random(seed++);
                    int lda = (transA ? m : k) + 1, ldb = (transB ? k : n) + 2, ldc = n + 3;
                    long sa = (long)(transA ? k : m) * lda + 5, sb = (long)(transB ? n : k) * ldb + 3;
                    float[] a = Random(rng, Math.Max(1, count * sa)), b = Random(rng, Math.Max(1, count * sb));
                    float[] c = beta == 0 ? Filled((long)m * ldc, float.NaN) : Random(rng, (long)m * ldc);
                    float[] expected = (float[])c.Clone();
                    if (beta == 0) for (int i = 0; i < m; i++) Array.Clear(expected, i * ldc, n);   // the sum of no pieces
                    float[] RunSum(int threads) => WithThreads(threads, () =>
                    {
                        float[] result = (float[])c.Clone();
                        fixed (float* pa = a, pb = b, pc = result)
                            Gemm.Run(kernel, blocking, 1, transA, transB, m, n, k, pa, lda, 0, pb, ldb, 0, beta, pc, ldc, 0, count, sa, sb);
                        return result;
                    });
                    float[] one = RunSum(1), two = RunSum(2);
                    Assert.True(one.AsSpan().SequenceEqual(two), "summed results differ between 1 and 2 threads");
                    fixed (float* pa = a, pb = b, pe = expected)
                        for (int e = 0; e < count; e++)
                            Gemm.Reference(transA, transB, m, n, k, pa + e * sa, lda, pb + e * sb, ldb, e == 0 ? beta : 1f, pe, ldc);
                    double err = 0, norm = 0;
                    for (int i = 0; i < m; i++)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            err += Math.Pow(two[i * ldc + j] - expected[i * ldc + j], 2);
                            norm += Math.Pow(expected[i * ldc + j], 2);
                        }
                        for (int j = n; j < ldc && i * ldc + j < two.Length; j++)
                            Assert.True(expected[i * ldc + j].Equals(two[i * ldc + j]), $"summed product wrote C[{i}, {j}] outside the n columns");
                    }
                    Assert.True(norm == 0 ? err == 0 : Math.Sqrt(err / norm) <= Tolerance,
                        $"{kernel} transA={transA} transB={transB} m={m} n={n} k={k} count={count} beta={beta}: {Math.Sqrt(err / norm):E2}");
                }
    }

    [Fact]
    public void Summed_product_at_a_weight_gradient_shape_is_bit_identical_on_1_and_2_threads()
    {
        // dW (192, 64) = Σ_b dy_b (192, 196) · x_bᵀ (196, 64) over 8 images: large enough for the threaded path
        const int m = 192, n = 64, k = 196, count = 8;
        var rng = new Random(5);
        float[] dy = Random(rng, (long)count * m * k), x = Random(rng, (long)count * n * k);
        float[] Run(int threads) => WithThreads(threads, () =>
        {
            var dw = new float[m * n];
            fixed (float* pd = dy, px = x, pw = dw) Gemm.SgemmSum(count, false, true, m, n, k, pd, k, (long)m * k, px, k, (long)n * k, 0f, pw, n);
            return dw;
        });
        Assert.Equal(Run(1), Run(2));
    }

    [Fact]
    public void Invalid_arguments_throw_with_the_shapes()
    {
        float[] buf = new float[64];
        fixed (float* p = buf)
        {
            float* q = p;
            var beta = Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 2, 2, q, 2, q, 2, 0.5f, q, 2));
            Assert.Contains("0.5", beta.Message);
            var lda = Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 3, 4, q, 3, q, 3, 0f, q, 3));
            Assert.Contains("2×4", lda.Message);
            Assert.Throws<ArgumentException>(() => Gemm.SgemmBatched(2, false, false, 2, 2, 2, q, 2, 0, q, 2, 0, 0f, q, 2, 0));
        }
    }

    static float[] Random(Random rng, long length)
    {
        var x = new float[length];
        for (long i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    static float[] Filled(long length, float value)
    {
        var x = new float[length];
        Array.Fill(x, value);
        return x;
    }

    static T WithThreads<T>(int threads, Func<T> body)
    {
        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = threads;
        try { return body(); }
        finally { Parallelism.MaxThreads = saved; }
    }
}

// Micro-benchmark of Gemm.Sgemm for `diffusharp bench ops`: median GFLOP/s of C = A·B (row-major, no transposes)
// at the current Parallelism.MaxThreads.
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DiffuSharp.Kernels;

/// <summary>The <c>diffusharp bench ops</c> micro-benchmark of <see cref="Gemm"/>: median GFLOP/s of C = A·B at the
/// current <see cref="Parallelism.MaxThreads"/>.</summary>
public static unsafe class GemmBench
{
    /// <summary>Median GFLOP/s (2·m·n·k per call) over <paramref name="samples"/> timed samples of at least 5 ms each (one call
    /// when a call takes longer; the protocol of scripts/bench_ops_torch.py),
    /// after at least <paramref name="warmupMs"/> of warm-up. Inputs are 64-byte aligned, uniform in [-1, 1).</summary>
    public static double MeasureGflops(int m, int n, int k, int warmupMs = 300, int samples = 7)
    {
        if (m <= 0 || n <= 0 || k <= 0 || samples <= 0)
            throw new ArgumentException($"GemmBench needs positive sizes and samples, got m={m}, n={n}, k={k}, samples={samples}");
        float* a = Alloc((long)m * k), b = Alloc((long)k * n), c = Alloc((long)m * n);
        try
        {
            var rng = new Random(1234);
            for (long i = 0; i < (long)m * k; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
            for (long i = 0; i < (long)k * n; i++) b[i] = (float)(rng.NextDouble() * 2 - 1);

            var clock = Stopwatch.StartNew();
            long calls = 0;
            do
            {
                Gemm.Sgemm(false, false, m, n, k, a, k, b, n, 0f, c, n);
                calls++;
            } while (clock.Elapsed.TotalMilliseconds < warmupMs || calls < 2);
            double perCallMs = clock.Elapsed.TotalMilliseconds / calls;
            int reps = (int)Math.Clamp(Math.Ceiling(5 / perCallMs), 1, 1_000_000);

            var gflops = new double[samples];
            for (int s = 0; s < samples; s++)
            {
                long start = Stopwatch.GetTimestamp();
                for (int r = 0; r < reps; r++)
                    Gemm.Sgemm(false, false, m, n, k, a, k, b, n, 0f, c, n);
                double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                gflops[s] = 2.0 * m * n * k * reps / seconds / 1e9;
            }
            Array.Sort(gflops);
            return gflops[samples / 2];
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(c);
        }
    }

    static float* Alloc(long floats) => (float*)NativeMemory.AlignedAlloc((nuint)floats * sizeof(float), 64);
}

// Placeholder GEMM with the final API (replaced by the packed kernel).
namespace DiffuSharp.Kernels;

public static unsafe class Gemm
{
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
        => Reference(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc);

    public static void SgemmBatched(int batch, bool transA, bool transB, int m, int n, int k, float* a, int lda, long strideA, float* b, int ldb, long strideB, float beta, float* c, int ldc, long strideC)
    {
        for (int i = 0; i < batch; i++) Reference(transA, transB, m, n, k, a + i * strideA, lda, b + i * strideB, ldb, beta, c + i * strideC, ldc);
    }

    internal static void Reference(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++) s += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                c[i * ldc + j] = beta == 0 ? s : c[i * ldc + j] + s;
            }
    }
}

// The 3×3 pad-1 weight gradient by its definition, in double: the reference the direct and lane kernels are checked against.
namespace DiffuSharp.Tests.Kernels;

internal static class ConvReference
{
    /// <summary>dw0[o, c, t] + Σ_b Σ_(oy, ox) dy[b, o, oy, ox] · x[b, c, oy + i − 1, ox + j − 1] (t = 3i + j, zero outside).</summary>
    public static double[] WeightGrad3x3(float[] dw0, float[] x, float[] dy, int batch, int cin, int cout, int h, int w)
    {
        var expect = new double[dw0.Length];
        for (int i = 0; i < dw0.Length; i++) expect[i] = dw0[i];
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < cout; o++)
                for (int c = 0; c < cin; c++)
                    for (int t = 0; t < 9; t++)
                    {
                        double s = 0;
                        for (int oy = 0; oy < h; oy++)
                            for (int ox = 0; ox < w; ox++)
                            {
                                int iy = oy + t / 3 - 1, ix = ox + t % 3 - 1;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                s += (double)dy[((b * cout + o) * h + oy) * w + ox] * x[((b * cin + c) * h + iy) * w + ix];
                            }
                        expect[(o * cin + c) * 9 + t] += s;
                    }
        return expect;
    }
}

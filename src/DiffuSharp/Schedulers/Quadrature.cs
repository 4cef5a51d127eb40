// Adaptive Gauss–Kronrod quadrature (G7/K15, the rule of QUADPACK's QK15), the integrator behind LMS's coefficients.
// Reference: Piessens et al. 1983, "QUADPACK", qk15 nodes and weights; diffusers' LMSDiscreteScheduler calls
// scipy.integrate.quad (QUADPACK qags) with epsrel 1e-4 on a polynomial of degree ≤ 3, which K15 integrates exactly
// on the first interval: the adaptive bisection is there for general integrands, never needed by LMS.
namespace DiffuSharp.Schedulers;

/// <summary>Numerical integration in double.</summary>
public static class Quadrature
{
    // Kronrod nodes x_k (k = 0..7, x_7 = 0) and weights; the Gauss 7-point weights belong to the odd-indexed nodes.
    static readonly double[] Xk =
    [
        0.991455371120812639206854697526329, 0.949107912342758524526189684047851, 0.864864423359769072789712788640926,
        0.741531185599394439863864773280788, 0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
        0.207784955007898467600689403773245, 0.000000000000000000000000000000000,
    ];
    static readonly double[] Wk =
    [
        0.022935322010529224963732008058970, 0.063092092629978553290700663189204, 0.104790010322250183839876322541518,
        0.140653259715525918745189590510238, 0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
        0.204432940075298892414161999234649, 0.209482141084727828012999174891714,
    ];
    static readonly double[] Wg =
    [
        0.129484966168869693270611432679082, 0.279705391489276667901467771423780, 0.381830050505118944950369775488975,
        0.417959183673469387755102040816327,
    ];

    /// <summary>∫_a^b f, bisecting until |K15 − G7| ≤ max(absTol, relTol·|K15|) on each piece (at most
    /// <paramref name="maxDepth"/> levels). a &gt; b gives the negative of ∫_b^a.</summary>
    public static double Integrate(Func<double, double> f, double a, double b, double relTol = 1e-10, double absTol = 1e-14, int maxDepth = 30)
    {
        if (a == b) return 0;
        return Adaptive(f, a, b, relTol, absTol, maxDepth);
    }

    static double Adaptive(Func<double, double> f, double a, double b, double relTol, double absTol, int depth)
    {
        var (k15, g7) = Rule(f, a, b);
        if (depth == 0 || Math.Abs(k15 - g7) <= Math.Max(absTol, relTol * Math.Abs(k15))) return k15;
        double m = 0.5 * (a + b);
        return Adaptive(f, a, m, relTol, absTol, depth - 1) + Adaptive(f, m, b, relTol, absTol, depth - 1);
    }

    /// <summary>The K15 and embedded G7 estimates of ∫_a^b f.</summary>
    internal static (double K15, double G7) Rule(Func<double, double> f, double a, double b)
    {
        double c = 0.5 * (a + b), h = 0.5 * (b - a);
        double fc = f(c);
        double k = fc * Wk[7], g = fc * Wg[3];
        for (int j = 0; j < 7; j++)
        {
            double dx = h * Xk[j];
            double s = f(c - dx) + f(c + dx);
            k += Wk[j] * s;
            if (j % 2 == 1) g += Wg[j / 2] * s;
        }
        return (k * h, g * h);
    }
}

using DiffuSharp;
using Xunit;

namespace DiffuSharp.Tests.Core;

public class ElementwiseGradTests
{
    public static TheoryData<int[], int[]> BroadcastShapes => new()
    {
        { [1], [1] }, { [3], [3] }, { [17], [1] }, { [2, 3, 17], [17] }, { [3, 1, 5], [1, 4, 1] },
        { [2, 33], [2, 1] }, { [4, 3, 2, 2], [3, 1, 1] }, { [1], [5, 3] },
    };

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void Add_backward_matches_finite_differences(int[] a, int[] b)
    {
        var rng = new Rng(1);
        GradCheck.Check(x => x[0] + x[1], [GradCheck.Randn(rng, a), GradCheck.Randn(rng, b)], rng);
    }

    [Fact]
    public void Pass_through_gradients_of_intermediates_used_again_match_finite_differences()
    {
        // An add, a reshape or a copy may hand its dy over as an intermediate's gradient buffer; later contributions
        // to that intermediate (used several times here) must still add up, and one dy never becomes two gradients.
        var rng = new Rng(11);
        GradCheck.Check(x =>
        {
            var a = x[0] * 1.3;                                   // (2, 3, 4, 5), non-leaf
            var b = (a * 0.5).Exp();
            var s = a + b;                                        // both full shape
            var t = s + (x[1] * 2.0).Reshape(2, 3, 1, 1);         // broadcast over H, W (the ResBlock's h + emb)
            var u = a - t;
            var r = u.Reshape(6, 20) + (a + a).Reshape(6, 20);    // the same tensor twice
            var c = Tensor.Concat([r, r * 2.0, s.Reshape(6, 20)], 1);
            var d = x[1].Reshape(6, 1, 1);
            var main = c.Transpose(0, 1).Contiguous() + (d + d).Reshape(1, 6) + a.Sum([2, 3]).Reshape(1, 6)   // (60, 6)
                + (r * 0.5).Sum([1]).Reshape(1, 6);              // r has a gradient before the concat's backward adds to it
            // Neither operand of this add has a gradient yet at its backward, and the second one's backward then
            // scatters into the first one's gradient through a transpose: a shared buffer would corrupt it.
            var p = x[2] * 0.7;
            var q = p + p.Transpose(0, 1).Contiguous();           // (5, 5)
            return Tensor.Concat([main.Reshape(-1), q.Reshape(-1)], 0);
        }, [GradCheck.Randn(rng, 2, 3, 4, 5), GradCheck.Randn(rng, 2, 3), GradCheck.Randn(rng, 5, 5)], rng);
    }

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void Sub_backward_matches_finite_differences(int[] a, int[] b)
    {
        var rng = new Rng(2);
        GradCheck.Check(x => x[0] - x[1], [GradCheck.Randn(rng, a), GradCheck.Randn(rng, b)], rng);
    }

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void Mul_backward_matches_finite_differences(int[] a, int[] b)
    {
        var rng = new Rng(3);
        GradCheck.Check(x => x[0] * x[1], [GradCheck.Randn(rng, a), GradCheck.Randn(rng, b)], rng);
    }

    [Theory, MemberData(nameof(BroadcastShapes))]
    public void Div_backward_matches_finite_differences(int[] a, int[] b)
    {
        var rng = new Rng(4);
        GradCheck.Check(x => x[0] / x[1], [GradCheck.Randn(rng, a), GradCheck.Uniform(rng, 0.5f, 2f, b)], rng);
    }

    public static TheoryData<string> UnaryNames => new() { "neg", "exp", "log", "sqrt", "tanh", "sigmoid", "silu", "quick_gelu", "gelu", "pow3", "pow-0.5", "affine", "clamp", "square" };

    [Theory, MemberData(nameof(UnaryNames))]
    public void Unary_backward_matches_finite_differences(string name)
    {
        foreach (var shape in new[] { new[] { 1 }, new[] { 3 }, new[] { 17 }, new[] { 3, 33 } })
        {
            var rng = new Rng(5);
            bool positive = name is "log" or "sqrt" or "pow-0.5";
            var x = positive ? GradCheck.Uniform(rng, 0.5f, 3f, shape) : GradCheck.Randn(rng, shape);
            if (name == "clamp")   // keep every point 2·eps away from the kinks at -0.5 and 0.7
                foreach (ref float v in x.Data)
                    if (Math.Abs(v + 0.5f) < 0.02f || Math.Abs(v - 0.7f) < 0.02f) v += 0.05f;
            Func<Tensor, Tensor> f = name switch
            {
                "neg" => t => -t,
                "exp" => t => t.Exp(),
                "log" => t => t.Log(),
                "sqrt" => t => t.Sqrt(),
                "tanh" => t => t.Tanh(),
                "sigmoid" => t => t.Sigmoid(),
                "silu" => t => t.Silu(),
                "quick_gelu" => t => t.QuickGelu(),
                "gelu" => t => t.Gelu(),
                "pow3" => t => t.Pow(3),
                "pow-0.5" => t => t.Pow(-0.5),
                "affine" => t => 2.5 - t * 0.75,
                "clamp" => t => t.Clamp(-0.5, 0.7),
                "square" => t => t.Square(),
                _ => throw new ArgumentException(name),
            };
            GradCheck.Check(xs => f(xs[0]), [x], rng);
        }
    }

    [Fact]
    public void Where_backward_matches_finite_differences()
    {
        var rng = new Rng(6);
        var cond = Tensor.FromArray([1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1], 17);
        GradCheck.Check(x => Tensor.Where(cond, x[0], x[1]), [GradCheck.Randn(rng, 3, 17), GradCheck.Randn(rng, 17)], rng);
    }

    [Fact]
    public void Binary_shape_mismatch_names_both_shapes()
    {
        var a = Tensor.Zeros(2, 3);
        var b = Tensor.Zeros(4);
        var ex = Assert.Throws<ArgumentException>(() => a + b);
        Assert.Contains("(2, 3)", ex.Message);
        Assert.Contains("(4)", ex.Message);
    }

    [Fact]
    public void Unary_values_match_double_precision()
    {
        var x = Tensor.FromArray([-20f, -3f, -0.5f, 0f, 0.25f, 1f, 4f, 20f], 8);
        var expect = new Func<double, double>[] { Math.Exp, Math.Tanh, v => 1 / (1 + Math.Exp(-v)), v => v / (1 + Math.Exp(-v)), v => v / (1 + Math.Exp(-1.702 * v)) };
        var got = new[] { x.Exp(), x.Tanh(), x.Sigmoid(), x.Silu(), x.QuickGelu() };
        for (int k = 0; k < expect.Length; k++)
            for (int i = 0; i < 8; i++)
            {
                double e = expect[k](x.Data[i]);
                Assert.True(Math.Abs(got[k].Data[i] - e) <= 2e-6 * Math.Max(1, Math.Abs(e)), $"op {k} at {x.Data[i]}: {got[k].Data[i]} vs {e}");
            }
    }
}

// The reference tensors of shared/parity/diffusion_ref.safetensors (see shared/parity/README.md) and of
// Fixtures/diffusion_extra_ref.safetensors, and comparisons that report the largest absolute and relative errors.
using DiffuSharp.IO;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

/// <summary>A parity fixture (safetensors, read with DiffuSharp.IO): tensors by name, as the dtypes the tests need.</summary>
internal sealed class DiffusionFixture(SafeTensorsFile file)
{
    static readonly Lazy<DiffusionFixture> Shared = new(() => new(SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "diffusion_ref.safetensors"))));
    static readonly Lazy<DiffusionFixture> ExtraFixture = new(() => new(SafeTensorsFile.Open(Path.Combine(TestPaths.Fixtures, "diffusion_extra_ref.safetensors"))));

    /// <summary>shared/parity/diffusion_ref.safetensors, read once per test run.</summary>
    public static DiffusionFixture Reference => Shared.Value;

    /// <summary>tests/DiffuSharp.Tests/Fixtures/diffusion_extra_ref.safetensors (made by make_diffusion_extra.py).</summary>
    public static DiffusionFixture Extra => ExtraFixture.Value;

    public int[] Shape(string name) => file.Info(name).Shape.Select(d => checked((int)d)).ToArray();
    public float[] F32(string name) => file.ReadFloat32(name);
    public double[] F64(string name) => file.ReadFloat64(name);
    public int[] Int(string name) => file.ReadInt64(name).Select(v => checked((int)v)).ToArray();
    public Tensor Tensor(string name) => DiffuSharp.Tensor.FromArray(F32(name), Shape(name));
}

/// <summary>Element-wise comparison that reports the worst absolute and relative errors.</summary>
internal static class Compare
{
    /// <summary>Max |a − e| and max |a − e| / |e| (over e ≠ 0).</summary>
    public static (double Abs, double Rel) Errors(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double abs = 0, rel = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            if (double.IsNaN(d)) return (double.NaN, double.NaN);
            abs = Math.Max(abs, d);
            if (expected[i] != 0) rel = Math.Max(rel, d / Math.Abs(expected[i]));
            else if (d != 0) rel = double.PositiveInfinity;
        }
        return (abs, rel);
    }

    public static (double Abs, double Rel) Errors(float[] actual, float[] expected)
        => Errors(actual.Select(v => (double)v).ToArray(), expected.Select(v => (double)v).ToArray());

    /// <summary>Passes when every element satisfies |a − e| ≤ atol + rtol·|e| (numpy's allclose).</summary>
    public static void Close(float[] actual, float[] expected, double atol, double rtol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (!(d <= atol + rtol * Math.Abs(expected[i])))
            {
                var (a, r) = Errors(actual, expected);
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R} (|diff| {d:E3}); max abs {a:E3}, max rel {r:E3}; atol {atol}, rtol {rtol}");
            }
        }
    }

    /// <summary>Every element within rtol relative error (float64 tables).</summary>
    public static void CloseRel(IReadOnlyList<double> actual, double[] expected, double rtol, string what)
    {
        Assert.Equal(expected.Length, actual.Count);
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            if (!(d <= rtol * Math.Abs(expected[i])))
                Assert.Fail($"{what}[{i}] is {actual[i]:R}, expected {expected[i]:R} (relative error {d / Math.Abs(expected[i]):E3} > {rtol})");
        }
    }
}

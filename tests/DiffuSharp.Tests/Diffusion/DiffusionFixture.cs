// Reads the reference tensors in shared/parity/diffusion_ref.safetensors (see shared/parity/README.md) and compares
// results against them with a report of the largest absolute and relative errors.
using System.Buffers.Binary;
using System.Text.Json;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

/// <summary>A safetensors file held in memory: F32, F64 and I64 tensors by name.</summary>
internal sealed class DiffusionFixture
{
    readonly byte[] _bytes;
    readonly int _dataStart;
    readonly Dictionary<string, (string Dtype, long[] Shape, long Begin, long End)> _entries = new();

    public DiffusionFixture(string path)
    {
        _bytes = File.ReadAllBytes(path);
        long n = BinaryPrimitives.ReadInt64LittleEndian(_bytes);
        _dataStart = checked(8 + (int)n);
        using var doc = JsonDocument.Parse(_bytes.AsMemory(8, (int)n));
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var off = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            _entries[p.Name] = (p.Value.GetProperty("dtype").GetString()!, shape, off[0], off[1]);
        }
    }

    static readonly Lazy<DiffusionFixture> Shared = new(() => new DiffusionFixture(Path.Combine(ParityDirectory(), "diffusion_ref.safetensors")));
    static readonly Lazy<DiffusionFixture> ExtraFixture = new(() => new DiffusionFixture(
        Path.Combine(SolutionDirectory(), "tests", "DiffuSharp.Tests", "Fixtures", "diffusion_extra_ref.safetensors")));

    /// <summary>shared/parity/diffusion_ref.safetensors, read once per test run.</summary>
    public static DiffusionFixture Reference => Shared.Value;

    /// <summary>tests/DiffuSharp.Tests/Fixtures/diffusion_extra_ref.safetensors (made by make_diffusion_extra.py).</summary>
    public static DiffusionFixture Extra => ExtraFixture.Value;

    /// <summary>The folder holding DiffuSharp.slnx, found by walking up from the test binaries.</summary>
    public static string SolutionDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DiffuSharp.slnx")) || File.Exists(Path.Combine(dir.FullName, "DiffuSharp.sln")))
                return dir.FullName;
        throw new DirectoryNotFoundException($"no DiffuSharp.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>shared/parity beside the solution folder (../shared/parity).</summary>
    public static string ParityDirectory()
    {
        var p = Path.GetFullPath(Path.Combine(SolutionDirectory(), "..", "shared", "parity"));
        if (Directory.Exists(p)) return p;
        const string fallback = "/work/shared/parity";
        if (Directory.Exists(fallback)) return fallback;
        throw new DirectoryNotFoundException($"shared/parity not found at {p}");
    }

    public int[] Shape(string name) => Entry(name, null).Shape.Select(d => (int)d).ToArray();

    public float[] F32(string name)
    {
        var e = Entry(name, "F32");
        var r = new float[(e.End - e.Begin) / 4];
        for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadSingleLittleEndian(_bytes.AsSpan(_dataStart + (int)e.Begin + 4 * i));
        return r;
    }

    public double[] F64(string name)
    {
        var e = Entry(name, "F64");
        var r = new double[(e.End - e.Begin) / 8];
        for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadDoubleLittleEndian(_bytes.AsSpan(_dataStart + (int)e.Begin + 8 * i));
        return r;
    }

    public long[] I64(string name)
    {
        var e = Entry(name, "I64");
        var r = new long[(e.End - e.Begin) / 8];
        for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadInt64LittleEndian(_bytes.AsSpan(_dataStart + (int)e.Begin + 8 * i));
        return r;
    }

    public int[] Int(string name) => I64(name).Select(v => checked((int)v)).ToArray();

    public Tensor Tensor(string name) => DiffuSharp.Tensor.FromArray(F32(name), Shape(name));

    (string Dtype, long[] Shape, long Begin, long End) Entry(string name, string? dtype)
    {
        if (!_entries.TryGetValue(name, out var e)) throw new KeyNotFoundException($"fixture has no tensor \"{name}\"");
        if (dtype is not null && e.Dtype != dtype) throw new InvalidOperationException($"fixture tensor \"{name}\" is {e.Dtype}, expected {dtype}");
        return e;
    }
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

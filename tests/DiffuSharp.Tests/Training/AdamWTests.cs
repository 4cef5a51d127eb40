// AdamW against PyTorch 1.13: replays the per-step gradients recorded in Fixtures/adamw_reference.json (written by
// Fixtures/make_adamw.py) and compares every parameter after each of the 20 steps; then recomputes the gradients
// with the engine itself. Also: SIMD kernel against its scalar reference, state round trip, ZeroGrad and Lr.
using System.Text.Json;
using DiffuSharp;
using DiffuSharp.Kernels;
using DiffuSharp.Training;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Training;

public class AdamWTests(ITestOutputHelper output)
{
    const double Tolerance = 1e-6;

    sealed record Run(string Name, AdamWConfig Config, Step[] Steps);
    sealed record Step(float[] GradW, float[] GradB, float[] W, float[] B, double Loss);
    sealed record Fixture(float[] X, float[] Y, float[] W0, float[] B0, Run[] Runs);

    static Fixture Load()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "adamw_reference.json");
        Assert.True(File.Exists(path), $"{path} is missing: run python3 tests/DiffuSharp.Tests/Fixtures/make_adamw.py (PyTorch 1.13)");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        string version = root.GetProperty("torch_version").GetString()!;
        Assert.True(version.StartsWith("1.13"), $"adamw_reference.json was made with torch {version}; the AdamW tests pin 1.13 — regenerate with make_adamw.py under PyTorch 1.13");
        static float[] F(JsonElement e) { var a = new float[e.GetArrayLength()]; int i = 0; foreach (var v in e.EnumerateArray()) a[i++] = (float)v.GetDouble(); return a; }
        var problem = root.GetProperty("problem");
        var runs = new List<Run>();
        foreach (var r in root.GetProperty("runs").EnumerateArray())
        {
            var c = r.GetProperty("config");
            var betas = c.GetProperty("betas");
            var config = new AdamWConfig(c.GetProperty("lr").GetDouble(), betas[0].GetDouble(), betas[1].GetDouble(),
                c.GetProperty("eps").GetDouble(), c.GetProperty("weight_decay").GetDouble());
            var steps = new List<Step>();
            foreach (var s in r.GetProperty("steps").EnumerateArray())
                steps.Add(new Step(F(s.GetProperty("grad_W")), F(s.GetProperty("grad_b")), F(s.GetProperty("W")), F(s.GetProperty("b")), s.GetProperty("loss").GetDouble()));
            runs.Add(new Run(r.GetProperty("name").GetString()!, config, steps.ToArray()));
        }
        return new Fixture(F(problem.GetProperty("X")), F(problem.GetProperty("Y")), F(problem.GetProperty("W0")), F(problem.GetProperty("b0")), runs.ToArray());
    }

    static double MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }

    [Fact]
    public void Replaying_PyTorch_gradients_reproduces_PyTorch_parameters_at_every_step()
    {
        var fx = Load();
        Assert.Equal(2, fx.Runs.Length);
        double worst = 0;
        foreach (var run in fx.Runs)
        {
            Assert.Equal(20, run.Steps.Length);
            var w = Tensor.FromArray(fx.W0, 3, 5); var b = Tensor.FromArray(fx.B0, 5);
            var opt = new AdamW([w, b], run.Config);
            for (int t = 0; t < run.Steps.Length; t++)
            {
                var s = run.Steps[t];
                w.Grad = Tensor.FromArray(s.GradW, 3, 5); b.Grad = Tensor.FromArray(s.GradB, 5);
                opt.Step();
                double d = Math.Max(MaxDiff(w.Data, s.W), MaxDiff(b.Data, s.B));
                worst = Math.Max(worst, d);
                Assert.True(d <= Tolerance, $"{run.Name} step {t + 1}: max |param − torch| = {d:G3}");
            }
        }
        output.WriteLine($"AdamW replay: max |param − torch param| over 2 runs × 20 steps = {worst:G3}");
    }

    [Fact]
    public void Engine_gradients_give_the_PyTorch_trajectory()
    {
        var fx = Load();
        var x = Tensor.FromArray(fx.X, 7, 3); var y = Tensor.FromArray(fx.Y, 7, 5);
        double worstParam = 0, worstGrad = 0;
        foreach (var run in fx.Runs)
        {
            var w = Tensor.FromArray(fx.W0, 3, 5).RequireGrad(); var b = Tensor.FromArray(fx.B0, 5).RequireGrad();
            var opt = new AdamW([w, b], run.Config);
            for (int t = 0; t < run.Steps.Length; t++)
            {
                var s = run.Steps[t];
                opt.ZeroGrad();
                var loss = Tensor.MseLoss(x.MatMul(w) + b, y);      // mean((X·W + b − Y)²)
                Assert.True(Math.Abs(loss.Item() - s.Loss) <= 1e-5 * Math.Max(1, Math.Abs(s.Loss)), $"{run.Name} step {t + 1}: loss {loss.Item()} vs torch {s.Loss}");
                loss.Backward();
                worstGrad = Math.Max(worstGrad, Math.Max(MaxDiff(w.Grad!.Data, s.GradW), MaxDiff(b.Grad!.Data, s.GradB)));
                opt.Step();
                double d = Math.Max(MaxDiff(w.Data, s.W), MaxDiff(b.Data, s.B));
                worstParam = Math.Max(worstParam, d);
                Assert.True(d <= Tolerance, $"{run.Name} step {t + 1}: max |param − torch| = {d:G3}");
            }
        }
        output.WriteLine($"AdamW with engine gradients: max |grad − torch| = {worstGrad:G3}, max |param − torch| = {worstParam:G3}");
        Assert.True(worstGrad <= 1e-5, $"max |grad − torch grad| = {worstGrad:G3}");
    }

    public static IEnumerable<object[]> Lengths()
    {
        for (int n = 0; n <= 257; n += n < 40 ? 1 : 31) yield return [n];
    }

    [Theory, MemberData(nameof(Lengths))]
    public void Simd_kernel_is_bit_identical_to_scalar_reference(int n)
    {
        var rng = new Rng((ulong)(500 + n));
        var s = new AdamWScalars(0.999f, 0.9f, (float)(1 - 0.9), 0.999f, (float)(1 - 0.999), (float)Math.Sqrt(1 - Math.Pow(0.999, 3)), 1e-8f, (float)(-1e-3 / (1 - Math.Pow(0.9, 3))));
        var p = new float[n + 3]; var g = new float[n + 3]; var m = new float[n + 3]; var v = new float[n + 3];
        rng.FillNormal(p); rng.FillNormal(g); rng.FillNormal(m, 0, 0.1f); rng.FillUniform(v, 0, 0.01f);
        float[] p2 = (float[])p.Clone(), m2 = (float[])m.Clone(), v2 = (float[])v.Clone();
        Optim.AdamWStep(p.AsSpan(3), g.AsSpan(3), m.AsSpan(3), v.AsSpan(3), s);                 // misaligned by 3
        Optim.AdamWReference(p2.AsSpan(3), g.AsSpan(3), m2.AsSpan(3), v2.AsSpan(3), s);
        Assert.Equal(p2, p); Assert.Equal(m2, m); Assert.Equal(v2, v);
    }

    [Fact]
    public void Exported_state_resumes_the_same_trajectory()
    {
        var rng = new Rng(9);
        var a = Tensor.RandN([70_000], rng); var b = Tensor.RandN([3, 5], rng);
        var config = new AdamWConfig(Lr: 1e-2, WeightDecay: 0.05);
        var grads = Enumerable.Range(0, 8).Select(_ => (Tensor.RandN([70_000], rng), Tensor.RandN([3, 5], rng))).ToArray();
        var opt = new AdamW([a, b], config);
        for (int t = 0; t < 4; t++) { a.Grad = grads[t].Item1; b.Grad = grads[t].Item2; opt.Step(); }

        var a2 = a.Clone(); var b2 = b.Clone();
        var resumed = new AdamW([a2, b2], config);
        resumed.ImportState(opt.ExportState());
        Assert.Equal(4, resumed.StepCount);
        for (int t = 4; t < 8; t++)
        {
            a.Grad = grads[t].Item1; b.Grad = grads[t].Item2; opt.Step();
            a2.Grad = grads[t].Item1; b2.Grad = grads[t].Item2; resumed.Step();
        }
        Assert.Equal(a.ToArray(), a2.ToArray());
        Assert.Equal(b.ToArray(), b2.ToArray());
        var bad = new AdamWState(1, [new float[3]], [new float[3]]);
        Assert.Throws<ArgumentException>(() => resumed.ImportState(bad));
    }

    [Fact]
    public void ZeroGrad_clears_in_place_and_parameters_without_grad_are_skipped()
    {
        var p = Tensor.Ones(4).RequireGrad(); var q = Tensor.Ones(2);
        (p * 3.0).Sum().Backward();
        var buffer = p.Grad!;
        var opt = new AdamW([p, q], new AdamWConfig(Lr: 0.1));
        opt.Step();
        Assert.Equal(new[] { 1f, 1f }, q.ToArray());             // no gradient: untouched
        Assert.All(p.ToArray(), v => Assert.Equal(0.9f, v, 6));  // first step moves by lr·sign(g)
        opt.ZeroGrad();
        Assert.Same(buffer, p.Grad);
        Assert.All(p.Grad!.ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Lr_can_be_changed_between_steps()
    {
        var p = Tensor.Ones(3);
        var opt = new AdamW([p], new AdamWConfig(Lr: 0.1, WeightDecay: 0.5));
        opt.Lr = 0;
        p.Grad = Tensor.Ones(3);
        opt.Step();
        Assert.Equal(new[] { 1f, 1f, 1f }, p.ToArray());         // lr 0: neither decay nor update
        opt.Lr = 0.01;
        opt.Step();
        Assert.All(p.ToArray(), v => Assert.Equal(1f * (1 - 0.005f) - 0.01f, v, 5));
        Assert.Throws<ArgumentException>(() => new AdamW([p], new AdamWConfig(Beta1: 1.0)));
    }
}

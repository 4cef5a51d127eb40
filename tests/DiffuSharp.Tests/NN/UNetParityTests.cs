// The mnist-s UNet against improved-diffusion itself (Fixtures/parity, made with PyTorch 1.13): the forward
// output, every block's output, and parameter gradients of loss = Σ out².
using DiffuSharp;
using DiffuSharp.IO;
using DiffuSharp.NN;
using Xunit;

namespace DiffuSharp.Tests.NN;

public class UNetParityTests
{
    static readonly UNetConfig MnistS = new(InChannels: 1, ModelChannels: 32, OutChannels: 1, NumResBlocks: 2,
        AttentionResolutions: [2], Dropout: 0.1f, ChannelMult: [1, 2, 2], NumHeads: 1);

    static (UNetModel Model, SafeTensorsFile Io) Load()
    {
        var model = new UNetModel(MnistS, new Rng(0));
        var weights = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "mnist_s_weights.safetensors"));
        var state = weights.Names.ToDictionary(n => n, n => (weights.Info(n).Shape.Select(d => (int)d).ToArray(), weights.ReadFloat32(n)));
        model.LoadStateDict(state, strict: true, source: "mnist_s_weights.safetensors");
        model.Eval();
        return (model, SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "mnist_s_io.safetensors")));
    }

    static Tensor Read(SafeTensorsFile f, string name) => Tensor.FromArray(f.ReadFloat32(name), f.Info(name).Shape.Select(d => (int)d).ToArray());

    /// <summary>max |a − b| / max |b|: the error relative to the tensor's scale.</summary>
    static double RelErr(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        return maxDiff / Math.Max(maxRef, 1e-30);
    }

    [Fact]
    public void State_dict_names_and_count_match_improved_diffusion()
    {
        var model = new UNetModel(MnistS, new Rng(0));
        var weights = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "mnist_s_weights.safetensors"));
        var mine = model.NamedParameters().Select(p => p.Name).OrderBy(n => n, StringComparer.Ordinal).ToArray();
        Assert.Equal(weights.Names.OrderBy(n => n, StringComparer.Ordinal).ToArray(), mine);
        Assert.Equal(1_623_169, model.ParameterCount());
    }

    [Fact]
    public void Forward_and_every_block_match_the_reference()
    {
        var (model, io) = Load();
        var x = Read(io, "x");
        var t = Read(io, "t_f32");
        var features = new List<Tensor>();
        float[] output;
        using (Tensor.NoGrad()) output = model.Forward(x, t, features: features).ToArray();

        // float32 vs PyTorch's float32: the reference's own float32 error is 1.8e-6 of 1.74 (out_f64 vs out).
        Assert.True(RelErr(io.ReadFloat32("out"), output) < 1e-4, $"out rel err {RelErr(io.ReadFloat32("out"), output):G3}");
        var emb = UNetModel.TimestepEmbedding(t, 32).ToArray();
        Assert.True(RelErr(io.ReadFloat32("feat.timestep_embedding"), emb) < 1e-5);
        string[] names = ["feat.emb", .. Enumerable.Range(0, 9).Select(i => $"feat.down.{i}"), "feat.middle", .. Enumerable.Range(0, 9).Select(i => $"feat.up.{i}")];
        Assert.Equal(names.Length, features.Count);
        for (int i = 0; i < names.Length; i++)
        {
            double err = RelErr(io.ReadFloat32(names[i]), features[i].ToArray());
            Assert.True(err < 1e-4, $"{names[i]}: rel err {err:G3}");
        }
    }

    [Fact]
    public void Forward_of_a_batch_of_16_through_the_fused_ResBlocks_matches_the_reference()
    {
        // The four reference inputs four times over: at 16 images the ResBlocks run fused on the lane kernels when no
        // gradient is recorded (Autograd/Ops.ResBlock.cs), and every copy must still give the reference output.
        var (model, io) = Load();
        var x4 = io.ReadFloat32("x");
        var t4 = io.ReadFloat32("t_f32");
        var x = Tensor.FromArray([.. x4, .. x4, .. x4, .. x4], 16, 1, 28, 28);
        var t = Tensor.FromArray([.. t4, .. t4, .. t4, .. t4], 16);
        float[] output;
        using (Tensor.NoGrad())
        {
            // the lane kernels with .NET's two-halves Vector512 where the CPU has no AVX-512: the same bits, slower
            using (DiffuSharp.Kernels.KernelSwitches.With(s => s with { LanesEmulated512 = true }))
            {
                Assert.True(DiffuSharp.Autograd.Ops.ResBlockFuses(Tensor.Zeros(16, 32, 28, 28), 32), "the ResBlocks do not run fused at batch 16");
                output = model.Forward(x, t).ToArray();
            }
        }
        var expected = io.ReadFloat32("out");
        for (int copy = 0; copy < 4; copy++)
        {
            double err = RelErr(expected, output[(copy * expected.Length)..((copy + 1) * expected.Length)]);
            Assert.True(err < 1e-4, $"copy {copy}: out rel err {err:G3}");
        }
    }

    [Fact]
    public void Parameter_and_input_gradients_match_the_reference()
    {
        var (model, io) = Load();
        var x = Read(io, "x").RequireGrad();
        var t = Read(io, "t_f32");
        var output = model.Forward(x, t);
        output.Square().Sum().Backward();
        var grads = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "mnist_s_grads.safetensors"));
        Assert.True(RelErr(io.ReadFloat32("grad.x"), x.Grad!.ToArray()) < 1e-3);
        // Some gradients are analytically zero: a conv bias feeding a GroupNorm with one channel per group is
        // removed by the mean subtraction, so both sides hold only rounding noise (~1e-9 of the largest gradient).
        // Those are judged against the largest gradient of the model instead of their own scale.
        double globalScale = model.NamedParameters().Max(p => grads.ReadFloat32("grad." + p.Name).Max(v => Math.Abs(v)));
        int checkedCount = 0;
        foreach (var (name, p) in model.NamedParameters())
        {
            var expected = grads.ReadFloat32("grad." + name);
            var actual = p.Grad?.ToArray() ?? new float[p.Count];
            double maxRef = expected.Max(v => Math.Abs(v));
            double err = RelErr(expected, actual) * maxRef / Math.Max(maxRef, 1e-4 * globalScale);
            Assert.True(err < 1e-3, $"grad.{name}: rel err {err:G3} (max |grad| {maxRef:G3}, model max {globalScale:G3})");
            checkedCount++;
        }
        Assert.Equal(244, checkedCount);
    }
}

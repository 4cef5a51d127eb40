// Linear weights packed for inference (Module.PackForInference): the same output bits as the plain layout in a whole
// CLIP text model; any other read of a packed weight (its values, a state dict, a forward with gradients, packing the
// parameters for training) first puts it back in (out, in) order; weights that share a buffer are never packed.
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DiffuSharp.Kernels;
using DiffuSharp.NN;
using DiffuSharp.NN.Clip;
using Xunit;

namespace DiffuSharp.Tests.NN;

[Collection("Parallelism")]
public sealed class LinearPackingTests
{
    static bool Supported => Vector512.IsHardwareAccelerated && Fma.IsSupported;

    static readonly ClipTextConfig Config = new(VocabSize: 60, HiddenSize: 96, IntermediateSize: 200, NumHiddenLayers: 2, NumAttentionHeads: 4,
        MaxPositionEmbeddings: 20, BosTokenId: 58, EosTokenId: 59);

    static int[] Ids()
    {
        var rng = new Random(4);
        return Enumerable.Range(0, 40).Select(i => i % 20 == 0 ? 58 : i % 20 > 12 ? 59 : rng.Next(1, 58)).ToArray();
    }

    static float[] Encode(ClipTextModel model)
    {
        using var _ = Tensor.NoGrad();
        return model.Forward(Ids(), 2).LastHiddenState.ToArray();
    }

    [Fact]
    public void Packed_text_model_gives_the_same_bits()
    {
        var plain = new ClipTextModel(Config, new Rng(3));
        var packed = new ClipTextModel(Config, new Rng(3));
        int count = packed.PackForInference();
        // per layer q, k, v, out and fc2 (96 outputs); fc1's 200 outputs are not a multiple of 32 and stay as they are
        Assert.Equal(Supported ? 2 * 5 : 0, count);
        Assert.True(Encode(plain).AsSpan().SequenceEqual(Encode(packed)), "the packed model's last hidden state differs");
        Assert.True(Encode(plain).AsSpan().SequenceEqual(Encode(packed)), "a second packed forward differs");
        Assert.Equal(count, packed.NamedParameters().Count(p => p.Param.HasPackedLayout));   // forwards leave them packed
    }

    [Fact]
    public void Reading_a_packed_weight_gives_its_values_and_unpacks_it()
    {
        var layer = new Linear(64, 96, new Rng(1));
        var original = layer.Weight.ToArray();
        var x = Tensor.Rand([3, 5, 64], new Rng(2), -1, 1);
        float[] expected;
        using (Tensor.NoGrad()) expected = layer.Forward(x).ToArray();
        Assert.Equal(Supported, layer.PackWeightForInference());
        if (!Supported) return;
        Assert.True(layer.Weight.HasPackedLayout);
        float[] got;
        using (Tensor.NoGrad()) got = layer.Forward(x).ToArray();
        Assert.True(expected.AsSpan().SequenceEqual(got), "packed forward differs");
        Assert.True(layer.Weight.HasPackedLayout, "a forward without gradients must leave the weight packed");

        Assert.True(original.AsSpan().SequenceEqual(layer.Weight.ToArray()), "reading the weight must give its (out, in) values");
        Assert.False(layer.Weight.HasPackedLayout);
        using (Tensor.NoGrad()) got = layer.Forward(x).ToArray();
        Assert.True(expected.AsSpan().SequenceEqual(got), "forward after unpacking differs");

        Assert.True(layer.PackWeightForInference(), "a layer unpacked by a read packs again");
        using (KernelSwitches.With(s => s with { PrepackedLinearDisabled = true }))
        {
            using (Tensor.NoGrad()) got = layer.Forward(x).ToArray();
            Assert.True(expected.AsSpan().SequenceEqual(got), "a weight packed before a scope that turns packing off still runs in it");
            Assert.True(layer.Weight.HasPackedLayout);
        }
        var state = layer.StateDict();
        Assert.True(original.AsSpan().SequenceEqual(state["weight"].Data), "a state dict of a packed layer must hold W");
    }

    [Fact]
    public void Layers_sharing_an_input_give_their_own_forwards()
    {
        var layers = new[] { new Linear(64, 96, new Rng(1)), new Linear(64, 32, new Rng(2)), new Linear(64, 64, new Rng(3), bias: false) };
        var x = Tensor.Rand([2, 9, 64], new Rng(4), -1, 1);
        float[][] expected;
        using (Tensor.NoGrad()) expected = layers.Select(l => l.Forward(x).ToArray()).ToArray();
        foreach (var l in layers) l.PackWeightForInference();
        foreach (bool mixed in new[] { false, true })
        {
            if (mixed) _ = layers[1].Weight.ToArray();     // one weight read back: the three run one by one
            Tensor[] ys;
            using (Tensor.NoGrad()) ys = Linear.Forward(x, layers);
            for (int i = 0; i < layers.Length; i++)
            {
                Assert.Equal(new[] { 2, 9, layers[i].OutFeatures }, ys[i].Shape);
                Assert.True(expected[i].AsSpan().SequenceEqual(ys[i].ToArray()), $"layer {i} (mixed={mixed}) differs");
            }
        }
    }

    [Fact]
    public void Forward_with_gradients_unpacks_and_gives_the_plain_gradient()
    {
        var plain = new Linear(64, 96, new Rng(1));
        var packed = new Linear(64, 96, new Rng(1));
        packed.PackWeightForInference();
        var x = Tensor.Rand([7, 64], new Rng(2), -1, 1);
        var yp = plain.Forward(x); (yp * yp).Sum().Backward();
        var yq = packed.Forward(x); (yq * yq).Sum().Backward();
        Assert.True(yp.ToArray().AsSpan().SequenceEqual(yq.ToArray()));
        Assert.True(plain.Weight.Grad!.ToArray().AsSpan().SequenceEqual(packed.Weight.Grad!.ToArray()), "weight gradient differs");
        Assert.False(packed.Weight.HasPackedLayout);
    }

    [Fact]
    public void Parameters_packed_for_training_are_never_repacked()
    {
        var model = new ClipTextModel(Config, new Rng(3));
        var before = Encode(model);
        if (Supported) Assert.True(model.PackForInference() > 0);
        model.PackParameters();                                   // reads every weight: unpacks all of them first
        Assert.DoesNotContain(model.Parameters(), p => p.HasPackedLayout);
        Assert.True(before.AsSpan().SequenceEqual(Encode(model)), "the flat parameters must hold the unpacked weights");
        Assert.Equal(0, model.PackForInference());                // views into the flat buffer: left as they are
        using (KernelSwitches.With(s => s with { PrepackedLinearDisabled = true }))
            Assert.Equal(0, new ClipTextModel(Config, new Rng(3)).PackForInference());
    }
}

// Pooling must never change a result: a UNet forward and backward, whole Trainer steps and the sampling loops give
// the same bits with pooled storage (recycled arrays, NaN-poisoned when returned, so an op that reads memory it did
// not write shows up) as with fresh GC arrays. Each pooled run is repeated in the same pool, so the second one runs
// entirely on recycled storage.
using DiffuSharp.Diffusion;
using DiffuSharp.Kernels;
using DiffuSharp.NN;
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Memory;

[Collection("Parallelism")]
public class PoolingParityTests
{
    static void AssertSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}[{i}]: {expected[i]:G9} unpooled vs {actual[i]:G9} pooled");
    }

    static (float[] Out, float[] Grads, float[] XGrad) UNetForwardBackward(UNetConfig cfg, bool training)
    {
        var m = new UNetModel(cfg, new Rng(3));
        m.PackParameters();
        m.Train(training);
        var rng = new Rng(5);
        var x = Tensor.RandN([3, cfg.InChannels, 16, 16], rng).RequireGrad();
        var t = Tensor.FromArray([1f, 300f, 999f], 3);
        int[]? classes = cfg.NumClasses is null ? null : [0, 2, 1];
        var y = m.Forward(x, t, classes, rng: new Rng(9));
        var w = Tensor.RandN(y.Shape, rng);
        (y * w).Sum().Backward();
        return (y.ToArray(), (float[])m.Flat!.Grads.Clone(), x.Grad!.ToArray());
    }

    public static TheoryData<bool, bool> UNetCases => new() { { true, false }, { false, true }, { true, true } };

    [Theory, MemberData(nameof(UNetCases))]
    public void UNet_forward_and_backward_give_the_same_bits_pooled_and_unpooled(bool scaleShift, bool training)
    {
        var cfg = new UNetConfig(InChannels: 2, ModelChannels: 32, OutChannels: 4, NumResBlocks: 1, AttentionResolutions: [2], ChannelMult: [1, 2],
            NumHeads: 2, Dropout: 0.1f, NumClasses: 3, UseScaleShiftNorm: scaleShift);
        (float[] Out, float[] Grads, float[] XGrad) reference;
        using (TensorScope.Unpooled())
        using (TensorScope.Begin())
            reference = UNetForwardBackward(cfg, training);
        for (int run = 0; run < 2; run++)
        {
            using var scope = TensorScope.Begin();
            var r = UNetForwardBackward(cfg, training);
            Assert.True(scope.PeakBytes > 0);
            AssertSameBits(reference.Out, r.Out, $"run {run} output");
            AssertSameBits(reference.Grads, r.Grads, $"run {run} parameter gradient");
            AssertSameBits(reference.XGrad, r.XGrad, $"run {run} input gradient");
        }
    }

    static float[] Flatten(IEnumerable<float[]> parts) => parts.SelectMany(p => p).ToArray();

    static (double[] Losses, float[] Weights, float[] Ema, float[] Moments) TrainSteps(bool pooled, bool learnSigma, int steps)
    {
        var model = TrainingFixtures.TinyModel(learnSigma: learnSigma, dropout: 0.1, classCond: true);
        var config = new TrainConfig(BatchSize: 12, Microbatch: learnSigma ? 5 : -1, Lr: 1e-3, GradClip: 1.0, EmaRate: "0.9",
            ScheduleSampler: learnSigma ? "loss-second-moment" : "uniform", TotalSteps: steps, Seed: 11);
        var trainer = new Trainer(model, config, TrainingFixtures.Synthetic(count: 24));
        var losses = new double[steps];
        using (pooled ? default : TensorScope.Unpooled())
            for (int i = 0; i < steps; i++) losses[i] = trainer.Step().Loss;
        var opt = trainer.Optimizer.ExportState();
        return (losses, (float[])trainer.Flat.Values.Clone(), trainer.Emas[0].Shadow[0].ToArray(), Flatten(opt.ExpAvg.Concat(opt.ExpAvgSq)));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Trainer_steps_give_the_same_bits_pooled_and_unpooled(bool learnSigma)
    {
        var reference = TrainSteps(pooled: false, learnSigma, steps: 3);
        var pooled = TrainSteps(pooled: true, learnSigma, steps: 3);
        Assert.Equal(reference.Losses, pooled.Losses);
        AssertSameBits(reference.Weights, pooled.Weights, "weights");
        AssertSameBits(reference.Ema, pooled.Ema, "ema");
        AssertSameBits(reference.Moments, pooled.Moments, "adam moments");
    }

    static UNetModel SamplingModel()
    {
        var m = new UNetModel(new UNetConfig(InChannels: 1, ModelChannels: 32, OutChannels: 2, NumResBlocks: 1, AttentionResolutions: [2],
            ChannelMult: [1, 2]), new Rng(6));
        // out.2 starts at zero; give it weights so the samples depend on the whole network.
        foreach (var (name, p) in m.NamedParameters())
            if (name.StartsWith("out.2", StringComparison.Ordinal)) new Rng(7).FillNormal(p.Data, 0f, 0.05f);
        m.Eval();
        return m;
    }

    [Theory, InlineData("ddim"), InlineData("ddpm")]
    public void Sampling_loops_give_the_same_bits_pooled_and_unpooled(string sampler)
    {
        var m = SamplingModel();
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 100, LearnSigma: true, TimestepRespacing: "8"));
        float[] Sample()
        {
            DiffusionModel fn = (x, t) => m.Forward(x, t);
            var x = sampler == "ddim"
                ? d.DdimSampleLoop(fn, [4, 1, 16, 16], new Rng(8), eta: 0.5)
                : d.PSampleLoop(fn, [4, 1, 16, 16], new Rng(8));
            return x.ToArray();
        }
        float[] reference;
        using (TensorScope.Unpooled()) reference = Sample();
        AssertSameBits(reference, Sample(), "sample");
        AssertSameBits(reference, Sample(), "sample, second run");
    }

    [Fact]
    public void A_streamed_step_is_valid_until_the_next_step_is_computed_and_the_last_one_stays()
    {
        var m = SamplingModel();
        var d = DiffusionFactory.Create(new DiffusionConfig(DiffusionSteps: 100, LearnSigma: true, TimestepRespacing: "4"));
        var steps = new List<SampleStep>();
        foreach (var s in d.DdimSampleLoopProgressive((x, t) => m.Forward(x, t), [4, 1, 16, 16], new Rng(9)))
        {
            Assert.False(s.Sample.IsReleased);
            if (steps.Count > 0) Assert.True(steps[^1].Sample.IsReleased);
            steps.Add(s);
        }
        Assert.Equal(4, steps.Count);
        var e = Assert.Throws<ObjectDisposedException>(() => steps[0].PredXStart.ToArray());
        Assert.Contains("Keep", e.Message);
        Assert.False(steps[^1].Sample.IsReleased);
        Assert.False(steps[^1].PredXStart.IsReleased);
        Assert.All(steps[^1].Sample.ToArray(), v => Assert.True(float.IsFinite(v)));
    }
}

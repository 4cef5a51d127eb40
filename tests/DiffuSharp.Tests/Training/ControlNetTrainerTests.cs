// ControlNet training over a frozen text-to-image model: a run stopped, checkpointed and resumed equals the
// uninterrupted run bit for bit; the UNet and text encoder keep their weights and get no gradients while the
// ControlNet learns and the loss falls on data whose latents follow the control image; the control images are the
// Canny edges or the filled silhouette of the padded image on three channels; sizes that do not embed are refused.
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Schedulers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Text;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

public sealed class ControlNetTrainerTests
{
    static readonly SchedulerConfig Noise = SchedulerConfig.DefaultsFor("DDPMScheduler") with
    {
        BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = BetaSchedule.ScaledLinear, ClipSample = false, StepsOffset = 1,
    };

    static readonly int[] EmbOut = [4, 8, 8];                       // two halvings: 16×16 control images → 4×4 latents

    static ClipTokenizer Tokenizer() => new(Path.Combine(LatentTrainerTests.TokenizerFolder, "vocab.json"), Path.Combine(LatentTrainerTests.TokenizerFolder, "merges.txt"), maxLength: 8);

    /// <summary>n images whose control image is a random square and whose latents are that square at 4×4 (2 channels).</summary>
    static (CaptionedLatents Data, ControlImages Control) Data(int n, ulong seed)
    {
        var rng = new Rng(seed);
        var labels = Enumerable.Range(0, n).Select(i => i % 10).ToArray();
        var masks = new float[n * 256];
        var mean = new float[n * 32];
        var std = new float[n * 32];
        for (int i = 0; i < n; i++)
        {
            int x0 = rng.NextInt(8), y0 = rng.NextInt(8), side = 4 + rng.NextInt(5);
            for (int y = y0; y < Math.Min(16, y0 + side); y++)
                for (int x = x0; x < Math.Min(16, x0 + side); x++) masks[i * 256 + y * 16 + x] = 1;
            for (int c = 0; c < 2; c++)
                for (int y = 0; y < 4; y++)
                    for (int x = 0; x < 4; x++)
                    {
                        float cover = 0;
                        for (int dy = 0; dy < 4; dy++) for (int dx = 0; dx < 4; dx++) cover += masks[i * 256 + (4 * y + dy) * 16 + 4 * x + dx];
                        mean[i * 32 + c * 16 + y * 4 + x] = (c == 0 ? 1 : -1) * (cover / 8f - 1f);
                        std[i * 32 + c * 16 + y * 4 + x] = 0.05f;
                    }
        }
        var attrs = Enumerable.Range(0, n).Select(i => new FashionAttributes(rng.NextDouble(), rng.NextDouble() * 700, rng.NextDouble() * 0.3)).ToArray();
        return (new CaptionedLatents(new LatentCache(mean, std, n, [2, 4, 4], 1.0, labels), labels, attrs), new ControlImages(ControlCondition.Edges, masks, n, 16));
    }

    static TrainConfig Config(long steps, int batch = 4) => new(BatchSize: batch, Lr: 2e-3, WarmupSteps: 2, EmaRate: "0.9", GradClip: 1, TotalSteps: steps, Seed: 5);

    static (UNet2DConditionModel UNet, ClipTextModel Text) Frozen() => (new UNet2DConditionModel(LatentTrainerTests.TinyUNet, new Rng(21)), new ClipTextModel(LatentTrainerTests.TinyText, new Rng(22)));

    static ControlNetTrainer New(long steps, (CaptionedLatents Data, ControlImages Control) d, LatentObjective? objective = null, int batch = 4, SchedulerConfig? noise = null)
    {
        var (unet, text) = Frozen();
        return new ControlNetTrainer(unet, text, noise ?? Noise, Config(steps, batch), objective ?? new LatentObjective(SnrGamma: 5), Tokenizer(), d.Data, d.Control, EmbOut);
    }

    [Fact]
    public void Resumed_run_equals_the_uninterrupted_run_bit_for_bit()
    {
        var d = Data(24, 1);
        var straight = New(6, d);
        for (int i = 0; i < 6; i++) straight.Step();

        using var dir = new TempDir();
        var first = New(6, d);
        for (int i = 0; i < 3; i++) first.Step();
        string ckpt = ControlNetCheckpoint.Save(first, dir.Path);
        var (unet, text) = Frozen();
        var resumed = ControlNetCheckpoint.Load(ckpt, unet, text, Tokenizer(), d.Data, d.Control);
        Assert.Equal(3, resumed.StepCount);
        Assert.Equal(first.Objective, resumed.Objective);
        Assert.Equal(ControlCondition.Edges, resumed.Condition);
        for (int i = 0; i < 3; i++) resumed.Step();

        Assert.Equal(straight.Flat.Values, resumed.Flat.Values);
        Assert.Equal(straight.Ema!.Shadow[0].ToArray(), resumed.Ema!.Shadow[0].ToArray());
        Assert.Equal(straight.Optimizer.ExportState().ExpAvgSq[0], resumed.Optimizer.ExportState().ExpAvgSq[0]);

        var silhouette = new ControlImages(ControlCondition.Silhouette, d.Control.Masks, d.Control.Count, d.Control.Size);
        (unet, text) = Frozen();
        var e = Assert.Throws<ArgumentException>(() => ControlNetCheckpoint.Load(ckpt, unet, text, Tokenizer(), d.Data, silhouette));
        Assert.Contains("edges", e.Message);
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.VPrediction)]
    public void Only_the_controlnet_learns_and_the_loss_falls(PredictionType prediction)
    {
        var d = Data(16, 2);
        var t = New(100, d, new LatentObjective(), batch: 8, noise: Noise with { PredictionType = prediction });
        var unet0 = t.UNet.StateDict();
        var text0 = t.TextEncoder.StateDict();
        var zeroConv0 = t.Net.NamedParameters().First(p => p.Name == "controlnet_mid_block.weight").Param.ToArray();
        Assert.All(zeroConv0, v => Assert.Equal(0f, v));
        var losses = Enumerable.Range(0, 100).Select(_ => t.Step().Mse).ToArray();
        Assert.True(losses[^15..].Average() < 0.7 * losses[..15].Average(), $"first {losses[..15].Average():F3}, last {losses[^15..].Average():F3}");

        foreach (var (name, p) in t.UNet.NamedParameters())
        {
            Assert.Equal(unet0[name].Data, p.ToArray());
            Assert.True(p.Grad is null || p.Grad.ToArray().All(v => v == 0), $"the frozen UNet's {name} has a gradient");
        }
        foreach (var (name, p) in t.TextEncoder.NamedParameters())
        {
            Assert.Equal(text0[name].Data, p.ToArray());
            Assert.True(p.Grad is null || p.Grad.ToArray().All(v => v == 0), $"the frozen text encoder's {name} has a gradient");
        }
        Assert.Contains(t.Net.NamedParameters().First(p => p.Name == "controlnet_mid_block.weight").Param.ToArray(), v => v != 0);
        Assert.Contains(t.Net.NamedParameters().First(p => p.Name == "controlnet_cond_embedding.conv_out.weight").Param.ToArray(), v => v != 0);
    }

    [Fact]
    public void Without_the_controlnet_the_same_data_does_not_fit_as_well()
    {
        // The frozen UNet alone cannot see the square; the trained ControlNet's residuals must lower the loss it leaves.
        var d = Data(16, 3);
        var t = New(120, d, new LatentObjective(), batch: 8);
        for (int i = 0; i < 120; i++) t.Step();
        var net = t.EmaNet();
        var images = Enumerable.Range(0, 16).ToArray();
        var z = d.Data.Latents.Sample(images, new Rng(4));
        var eps = Tensor.RandN(z.Shape, new Rng(5));
        var ac = ScheduleMath.AlphasCumprod(ScheduleMath.Betas(Noise));
        double with = 0, without = 0;
        using (Tensor.NoGrad())
            foreach (int step in new[] { 300, 600, 900 })
            {
                var xt = z * Math.Sqrt(ac[step]) + eps * Math.Sqrt(1 - ac[step]);
                var ts = Tensor.FromArray([(float)step], 1);
                var ids = t.TokenIds(images, 0, out _);
                var ctx = t.TextEncoder.Forward(ids, 16).LastHiddenState;
                var r = net.Forward(xt, ts, ctx, d.Control.Batch(images));
                with += (t.UNet.Forward(xt, ts, ctx, null, r.DownBlockResSamples, r.MidBlockResSample) - eps).Square().Mean().Item();
                without += (t.UNet.Forward(xt, ts, ctx) - eps).Square().Mean().Item();
            }
        Assert.True(with < 0.8 * without, $"with {with:F3}, without {without:F3}");
    }

    [Fact]
    public void Control_images_are_the_edges_or_silhouette_of_the_padded_image_on_three_channels()
    {
        // a 10×10 gray square (0.2 in [−1, 1], 0.6 in [0, 1]; with a 2×2 black hole) on black, 28×28, padded by 2 to 32×32
        var img = Enumerable.Repeat(-1f, 28 * 28).ToArray();
        for (int y = 9; y < 19; y++) for (int x = 9; x < 19; x++) img[y * 28 + x] = 0.2f;
        for (int y = 13; y < 15; y++) for (int x = 13; x < 15; x++) img[y * 28 + x] = -1f;
        var data = new ImageDataset(img, 1, 1, 28, 28, [0], 10);
        var sil = ControlImages.Compute(data, 2, ControlCondition.Silhouette);
        Assert.Equal(32, sil.Size);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                Assert.Equal(y >= 11 && y < 21 && x >= 11 && x < 21 ? 1f : 0f, sil.Masks[y * 32 + x]);   // the hole is filled
        var edges = ControlImages.Compute(data, 2, ControlCondition.Edges);
        var gray = new float[32 * 32];
        for (int y = 0; y < 32; y++) for (int x = 0; x < 32; x++) gray[y * 32 + x] = y >= 2 && y < 30 && x >= 2 && x < 30 ? (img[(y - 2) * 28 + x - 2] + 1) / 2 : 0;
        var expected = Canny.Detect(gray, 32, 32, new CannyOptions(1.0, 0.2, 0.4));
        Assert.Equal(expected.Select(b => b ? 1f : 0f), edges.Masks);
        Assert.InRange(edges.Masks.Count(v => v == 1), 30, 60);
        Assert.Equal(0f, edges.Masks[16 * 32 + 5]);
        var batch = edges.Batch([0, 0]).ToArray();
        Assert.Equal(2 * 3 * 1024, batch.Length);
        for (int c = 0; c < 6; c++) Assert.Equal(edges.Masks, batch.AsSpan(c * 1024, 1024).ToArray());
    }

    [Fact]
    public void Control_images_that_do_not_embed_to_the_latents_are_refused()
    {
        var d = Data(8, 6);
        var (unet, text) = Frozen();
        var e = Assert.Throws<ArgumentException>(() => new ControlNetTrainer(unet, text, Noise, Config(1), new LatentObjective(), Tokenizer(), d.Data, d.Control, [4, 8]));
        Assert.Contains("give 3 entries", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => ControlImages.Parse("depth"));
        Assert.Contains("edges or silhouette", e2.Message);
    }
}

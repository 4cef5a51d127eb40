// VAE training: a run stopped, checkpointed and resumed equals the uninterrupted run bit for bit; the loss falls on
// a small set; the vae/ folder written by VaeFolder loads through ComponentLoader with the same outputs and the
// keys diffusers' AutoencoderKL takes; scaling_factor makes the scaled latents' std 1; padding and PSNR.
using System.Text.Json;
using DiffuSharp.Data;
using DiffuSharp.Evaluation;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

public sealed class VaeTrainerTests
{
    static ImageDataset Blobs(int n, int size, ulong seed)
    {
        // Gray squares of random position, size and level on black: something an autoencoder can learn quickly.
        var rng = new Rng(seed);
        var img = new float[n * size * size];
        Array.Fill(img, -1f);
        for (int i = 0; i < n; i++)
        {
            int s = 2 + rng.NextInt(size / 2), x0 = rng.NextInt(size - s), y0 = rng.NextInt(size - s);
            float v = (float)(rng.NextDouble() * 1.6 - 0.6);
            for (int y = y0; y < y0 + s; y++)
                for (int x = x0; x < x0 + s; x++) img[i * size * size + y * size + x] = v;
        }
        return new ImageDataset(img, n, 1, size, size);
    }

    static TrainConfig Config(long steps) => new(BatchSize: 4, Lr: 2e-3, WarmupSteps: 2, EmaRate: "0.9", TotalSteps: steps, Seed: 7);

    [Fact]
    public void Resumed_run_equals_the_uninterrupted_run_bit_for_bit()
    {
        var data = Blobs(24, 8, 1);
        var objective = new VaeObjective(ReconstructionLoss.L1, KlWeight: 1e-3, Pad: 0);
        var straight = new VaeTrainer(VaeGradientTests.Tiny, Config(6), objective, data);
        for (int i = 0; i < 6; i++) straight.Step();

        using var dir = new TempDir();
        var first = new VaeTrainer(VaeGradientTests.Tiny, Config(6), objective, data);
        for (int i = 0; i < 3; i++) first.Step();
        string ckpt = VaeCheckpoint.Save(first, dir.Path);
        var resumed = VaeCheckpoint.Load(ckpt, data);
        Assert.Equal(3, resumed.StepCount);
        Assert.Equal(objective, resumed.Objective);
        for (int i = 0; i < 3; i++) resumed.Step();

        Assert.Equal(straight.Flat.Values, resumed.Flat.Values);
        Assert.Equal(straight.Ema!.Shadow[0].ToArray(), resumed.Ema!.Shadow[0].ToArray());
        Assert.Equal(straight.Optimizer.ExportState().ExpAvgSq[0], resumed.Optimizer.ExportState().ExpAvgSq[0]);
    }

    [Fact]
    public void A_frozen_encoder_keeps_the_latent_space_while_the_decoder_learns()
    {
        var data = Blobs(16, 8, 4);
        var init = new AutoencoderKL(VaeGradientTests.Tiny, new Rng(11));
        var t = new VaeTrainer(VaeGradientTests.Tiny, Config(4), new VaeObjective(Pad: 0, FreezeEncoder: true), data);
        t.InitFrom(init.StateDict(), "init");
        Assert.Equal(init.StateDict()["encoder.conv_in.weight"].Data, t.Ema!.Shadow[0].ToArray().AsSpan(0, init.StateDict()["encoder.conv_in.weight"].Data.Length).ToArray());
        for (int i = 0; i < 4; i++) t.Step();
        var after = t.Model.StateDict();
        var ema = t.ExportWeights(t.Ema).ToDictionary(w => w.Name, w => w.Data);   // what vae/ is written from
        foreach (var (name, (_, data0)) in init.StateDict())
        {
            bool encoderSide = name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal);
            if (!encoderSide) continue;
            Assert.Equal(data0, after[name].Data);
            Assert.Equal(data0, ema[name]);
        }
        Assert.NotEqual(init.StateDict()["decoder.conv_out.weight"].Data, after["decoder.conv_out.weight"].Data);
        var json = t.Objective.ToJson();
        Assert.True(VaeObjective.FromJson(json, "x").FreezeEncoder);
        json.Remove("freeze_encoder");                                   // checkpoints written before the option: off
        Assert.False(VaeObjective.FromJson(json, "x").FreezeEncoder);
    }

    [Fact]
    public void Ema_warms_up_as_diffusers_ema_model()
    {
        var data = Blobs(8, 8, 6);
        var t = new VaeTrainer(VaeGradientTests.Tiny, Config(3), new VaeObjective(Pad: 0), data);
        var init = t.Flat.Values.ToArray();
        t.Step();                                                     // first update: rate min(0.9, 1/10) = 0.1
        var ema = t.Ema!.Shadow[0].ToArray();
        for (int i = 0; i < ema.Length; i += 97)
            Assert.Equal(0.1f * init[i] + 0.9f * t.Flat.Values[i], ema[i], 1e-6f);
        Assert.Equal(0.9, t.EmaRateAt(1000));
        Assert.Equal(2.0 / 11, t.EmaRateAt(1), 12);
    }

    [Fact]
    public void A_damaged_checkpoint_is_refused_by_name()
    {
        var data = Blobs(8, 8, 2);
        var t = new VaeTrainer(VaeGradientTests.Tiny, Config(2), new VaeObjective(Pad: 0), data);
        t.Step();
        using var dir = new TempDir();
        string ckpt = VaeCheckpoint.Save(t, dir.Path);
        var file = Path.Combine(ckpt, "ema.safetensors");
        var bytes = File.ReadAllBytes(file);
        bytes[^3] ^= 0x40;
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<InvalidDataException>(() => VaeCheckpoint.Load(ckpt, data));
        Assert.Contains("ema.safetensors", e.Message);
    }

    [Fact]
    public void Loss_falls_when_training_on_a_small_set()
    {
        var data = Blobs(16, 8, 3);
        var t = new VaeTrainer(VaeGradientTests.Tiny, new TrainConfig(BatchSize: 8, Lr: 3e-3, EmaRate: "", TotalSteps: 60, Seed: 1),
            new VaeObjective(ReconstructionLoss.L2, 1e-4, Pad: 0), data);
        var losses = Enumerable.Range(0, 60).Select(_ => t.Step().Rec).ToArray();
        Assert.True(losses[^5..].Average() < 0.5 * losses[..5].Average(), $"first {losses[..5].Average():F2}, last {losses[^5..].Average():F2}");
    }

    [Fact]
    public void Vae_folder_loads_back_with_the_same_outputs_and_diffusers_keys()
    {
        var vae = new AutoencoderKL(VaeGradientTests.Tiny with { ScalingFactor = 0.731 }, new Rng(9));
        using var dir = new TempDir();
        VaeFolder.Save(dir.Path, vae.Config, VaeFolder.Weights(vae));
        var loaded = ComponentLoader.LoadAutoencoderKL(dir.Path);
        Assert.Equal(0.731, loaded.ScalingFactor);
        var x = Tensor.Rand([2, 1, 8, 8], new Rng(1), -1f, 1f);
        using (Tensor.NoGrad())
        {
            vae.Eval();
            Assert.Equal(vae.Forward(x).ToArray(), loaded.Forward(x).ToArray());
        }
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "config.json")));
        var keys = doc.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToArray();
        // AutoencoderKL.__init__'s arguments in diffusers 0.27.2, and the two bookkeeping keys.
        Assert.Equal(["_class_name", "_diffusers_version", "act_fn", "block_out_channels", "down_block_types", "force_upcast", "in_channels",
            "latent_channels", "latents_mean", "latents_std", "layers_per_block", "norm_num_groups", "out_channels", "sample_size", "scaling_factor", "up_block_types"], keys);
    }

    [Fact]
    public void Scaling_factor_makes_the_latent_std_one()
    {
        var vae = new AutoencoderKL(VaeGradientTests.Tiny, new Rng(2));
        var data = Blobs(64, 8, 4);
        double s = VaeTrainer.ScalingFactor(vae, data.Images, 64, new Rng(5), batch: 16);
        var z = new List<float>();
        var rng = new Rng(5);
        using (Tensor.NoGrad())
            for (int start = 0; start < 64; start += 16)
                z.AddRange(vae.Encode(Tensor.FromSpan(data.Images.AsSpan(start * 64, 16 * 64), 16, 1, 8, 8)).Sample(rng).ToArray());
        double mean = z.Average(v => (double)v), std = Math.Sqrt(z.Sum(v => (v - mean) * (v - mean)) / (z.Count - 1));
        Assert.Equal(1.0, s * std, 6);
    }

    [Fact]
    public void Padding_then_cropping_gives_the_images_back_and_psnr_is_right()
    {
        var data = Blobs(3, 6, 5);
        var padded = ImagePadding.Pad(data, 2);
        Assert.Equal((10, 10), (padded.Height, padded.Width));
        Assert.Equal(-1f, padded.Images[0]);
        Assert.Equal(data.Images, ImagePadding.Crop(padded.Images, 3, 1, 10, 10, 2));
        // A uniform error of 0.02 in [-1, 1] units is 0.01 in [0, 1]: PSNR = 10·log10(1 / 1e-4) = 40 dB.
        var noisy = data.Images.Select(v => v > 0.5f ? v - 0.02f : v + 0.02f).ToArray();
        var p = VaeEvaluation.Psnr(data.Images, noisy, 3);
        Assert.Equal(40.0, p.PooledDb, 3);
        Assert.Equal(40.0, p.MeanPerImageDb, 3);
        Assert.Equal(0.0, p.StdPerImageDb, 6);
        // Per image 40 dB and 20 dB (errors 0.01 and 0.1 in [0, 1]): mean 30 ± 10 dB; pooled from the mean MSE.
        var mixed = (float[])data.Images.Clone();
        int len = data.ImageLength;
        for (int k = 0; k < len; k++) mixed[k] = data.Images[k] > 0.5f ? data.Images[k] - 0.02f : data.Images[k] + 0.02f;
        for (int k = len; k < 2 * len; k++) mixed[k] = data.Images[k] > 0.5f ? data.Images[k] - 0.2f : data.Images[k] + 0.2f;
        var q = VaeEvaluation.Psnr(data.Images.AsSpan(0, 2 * len), mixed.AsSpan(0, 2 * len), 2);
        Assert.Equal(30.0, q.MeanPerImageDb, 3);
        Assert.Equal(10.0, q.StdPerImageDb, 3);
        Assert.Equal(10 * Math.Log10(1 / ((1e-4 + 1e-2) / 2)), q.PooledDb, 3);
    }
}

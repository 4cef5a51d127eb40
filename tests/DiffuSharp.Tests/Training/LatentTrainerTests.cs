// Text-to-image latent training: a run stopped, checkpointed and resumed equals the uninterrupted run bit for bit;
// the loss falls on a small set; both models receive gradients; the diffusers pipeline folder written from the EMA
// loads back through StableDiffusionPipeline.Load with the same UNet and text encoder outputs, with the keys
// diffusers' UNet2DConditionModel and transformers' CLIPTextConfig take; captions follow the image and the epoch.
using System.Text.Json;
using DiffuSharp.Data;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Text;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

public sealed class LatentTrainerTests
{
    internal static readonly UNet2DConditionConfig TinyUNet = new()
    {
        InChannels = 2, OutChannels = 2, SampleSize = 4, BlockOutChannels = [8, 8], NormNumGroups = 4, LayersPerBlock = [1, 1],
        DownBlockTypes = [DownBlockType.CrossAttnDownBlock2D, DownBlockType.DownBlock2D], UpBlockTypes = [UpBlockType.UpBlock2D, UpBlockType.CrossAttnUpBlock2D],
        NumHeads = [2, 2], CrossAttentionDim = [8, 8], OnlyCrossAttention = [false, false], TransformerLayersPerBlock = [[1], [1]],
    };

    internal static readonly ClipTextConfig TinyText = new(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 1, NumAttentionHeads: 2, MaxPositionEmbeddings: 8, ProjectionDim: 8);

    static readonly SchedulerConfig Noise = SchedulerConfig.DefaultsFor("DDPMScheduler") with
    {
        BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = BetaSchedule.ScaledLinear, ClipSample = false, StepsOffset = 1,
    };

    internal static string TokenizerFolder => Path.Combine(TestPaths.Diffusers, "clip_tokenizer");

    static ClipTokenizer Tokenizer() => new(Path.Combine(TokenizerFolder, "vocab.json"), Path.Combine(TokenizerFolder, "merges.txt"), maxLength: 8);

    /// <summary>n fake posteriors (2×4×4) with labels and attributes: latents that depend on the label, so text matters.</summary>
    static CaptionedLatents Data(int n, ulong seed)
    {
        var rng = new Rng(seed);
        var labels = Enumerable.Range(0, n).Select(i => i % 10).ToArray();
        var mean = new float[n * 32];
        var std = new float[n * 32];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 32; k++) { mean[i * 32 + k] = (labels[i] - 4.5f) / 3f + 0.1f * (float)rng.NextDouble(); std[i * 32 + k] = 0.05f; }
        var attrs = Enumerable.Range(0, n).Select(i => new FashionAttributes(rng.NextDouble(), rng.NextDouble() * 700, rng.NextDouble() * 0.3)).ToArray();
        return new CaptionedLatents(new LatentCache(mean, std, n, [2, 4, 4], 1.0, labels), labels, attrs);
    }

    static TrainConfig Config(long steps, int batch = 4) => new(BatchSize: batch, Lr: 2e-3, WarmupSteps: 2, EmaRate: "0.9", GradClip: 1, TotalSteps: steps, Seed: 5);

    static LatentTrainer New(long steps, CaptionedLatents data, LatentObjective? objective = null, SchedulerConfig? noise = null, int batch = 4)
        => new(TinyUNet, TinyText, noise ?? Noise, Config(steps, batch), objective ?? new LatentObjective(SnrGamma: 5), Tokenizer(), data);

    [Fact]
    public void Resumed_run_equals_the_uninterrupted_run_bit_for_bit()
    {
        var data = Data(24, 1);
        var straight = New(6, data);
        for (int i = 0; i < 6; i++) straight.Step();

        using var dir = new TempDir();
        var first = New(6, data);
        for (int i = 0; i < 3; i++) first.Step();
        string ckpt = LatentCheckpoint.Save(first, dir.Path);
        var resumed = LatentCheckpoint.Load(ckpt, Tokenizer(), data);
        Assert.Equal(3, resumed.StepCount);
        Assert.Equal(first.Objective, resumed.Objective);
        Assert.Equal(Noise.BetaSchedule, resumed.NoiseScheduler.BetaSchedule);
        for (int i = 0; i < 3; i++) resumed.Step();

        Assert.Equal(straight.Flat.Values, resumed.Flat.Values);
        Assert.Equal(straight.Ema!.Shadow[0].ToArray(), resumed.Ema!.Shadow[0].ToArray());
        Assert.Equal(straight.Optimizer.ExportState().ExpAvgSq[0], resumed.Optimizer.ExportState().ExpAvgSq[0]);
    }

    [Fact]
    public void Caption_settings_survive_a_checkpoint_and_runs_without_them_resume_with_the_old_draw()
    {
        var data = Data(8, 2);
        var t = new LatentTrainer(TinyUNet, TinyText, Noise, Config(2), new LatentObjective(), Tokenizer(), data with { Drawing = new CaptionOptions(BareProbability: 0.5) });
        t.Step();
        using var dir = new TempDir();
        string ckpt = LatentCheckpoint.Save(t, dir.Path);
        Assert.Equal(0.5, LatentCheckpoint.Load(ckpt, Tokenizer(), data).Data.Drawing!.BareProbability);
        // The trainer draws with its settings: all bare, no attribute word in any epoch's captions (with them, some).
        string[] words = ["small", "large", "dark", "light", "plain", "patterned"];
        var bare = new LatentTrainer(TinyUNet, TinyText, Noise, Config(1), new LatentObjective(), Tokenizer(), data with { Drawing = new CaptionOptions(BareProbability: 1) });
        var plain = New(1, data);
        int Worded(LatentTrainer tr) => Enumerable.Range(0, 20).Sum(epoch =>
        {
            tr.TokenIds(Enumerable.Range(0, 8).ToArray(), epoch, out var captions);
            return captions.Count(c => c.Split(' ').Any(words.Contains));
        });
        Assert.Equal(0, Worded(bare));
        Assert.True(Worded(plain) > 20);
        // A checkpoint from before the settings were stored: the same run, its "captions" key removed (and the manifest redone).
        var state = Path.Combine(ckpt, "trainer.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(state))!.AsObject();
        Assert.True(json.Remove("captions"));
        File.WriteAllText(state, json.ToJsonString());
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(ckpt, "manifest.json")))!.AsObject();
        CheckpointManifest.Write(ckpt, manifest["model"]!.AsObject(), manifest["config"]!.AsObject());
        Assert.Equal(new CaptionOptions(), LatentCheckpoint.Load(ckpt, Tokenizer(), data with { Drawing = new CaptionOptions(BareProbability: 1) }).Data.Drawing);
    }

    [Fact]
    public void Fine_tuning_starts_from_the_given_weights_and_its_ema_with_them()
    {
        var data = Data(8, 2);
        var source = New(2, data);
        source.Step();
        var t = New(2, data);
        Assert.NotEqual(source.Flat.Values, t.Flat.Values);
        t.InitializeFrom(source.Model.UNet, source.Model.TextEncoder, "source");
        Assert.Equal(source.Flat.Values, t.Flat.Values);
        Assert.Equal(t.Flat.Values, t.Ema!.Shadow[0].ToArray());
        t.Step();
        Assert.Throws<InvalidOperationException>(() => t.InitializeFrom(source.Model.UNet, source.Model.TextEncoder, "source"));
        var wider = new LatentTrainer(TinyUNet, TinyText with { IntermediateSize = 32 }, Noise, Config(1), new LatentObjective(), Tokenizer(), data);
        var e = Assert.Throws<InvalidDataException>(() => wider.InitializeFrom(source.Model.UNet, source.Model.TextEncoder, "the source folder"));
        Assert.Contains("the source folder", e.Message);
    }

    [Fact]
    public void A_damaged_checkpoint_is_refused_by_name()
    {
        var data = Data(8, 2);
        var t = New(2, data);
        t.Step();
        using var dir = new TempDir();
        string ckpt = LatentCheckpoint.Save(t, dir.Path);
        var file = Path.Combine(ckpt, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        bytes[^3] ^= 0x40;
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<InvalidDataException>(() => LatentCheckpoint.Load(ckpt, Tokenizer(), data));
        Assert.Contains("model.safetensors", e.Message);
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.VPrediction)]
    public void Loss_falls_and_both_models_learn(PredictionType prediction)
    {
        var data = Data(16, 3);
        var t = New(80, data, new LatentObjective(), Noise with { PredictionType = prediction }, batch: 8);
        var unet0 = t.Model.UNet.NamedParameters().First(p => p.Name == "conv_out.weight").Param.ToArray();
        var text0 = t.Model.TextEncoder.NamedParameters().First(p => p.Name.EndsWith("final_layer_norm.weight", StringComparison.Ordinal)).Param.ToArray();
        var losses = Enumerable.Range(0, 80).Select(_ => t.Step().Mse).ToArray();
        Assert.True(losses[^10..].Average() < 0.7 * losses[..10].Average(), $"first {losses[..10].Average():F3}, last {losses[^10..].Average():F3}");
        Assert.NotEqual(unet0, t.Model.UNet.NamedParameters().First(p => p.Name == "conv_out.weight").Param.ToArray());
        Assert.NotEqual(text0, t.Model.TextEncoder.NamedParameters().First(p => p.Name.EndsWith("final_layer_norm.weight", StringComparison.Ordinal)).Param.ToArray());
    }

    [Fact]
    public void Min_snr_weights_follow_the_prediction_type()
    {
        var data = Data(8, 4);
        var eps = New(1, data, new LatentObjective(SnrGamma: 5));
        var v = New(1, data, new LatentObjective(SnrGamma: 5), Noise with { PredictionType = PredictionType.VPrediction });
        var ac = ScheduleMath.AlphasCumprod(ScheduleMath.Betas(Noise));
        int[] t = [0, 100, 500, 999];
        var we = eps.MinSnrWeights(t);
        var wv = v.MinSnrWeights(t);
        for (int i = 0; i < t.Length; i++)
        {
            double snr = ac[t[i]] / (1 - ac[t[i]]);
            Assert.Equal(Math.Min(snr, 5) / snr, we[i], 1e-6);
            Assert.Equal(Math.Min(snr, 5) / (snr + 1), wv[i], 1e-6);
        }
        Assert.True(we[0] < 0.01 && we[3] == 1f);
    }

    [Fact]
    public void Captions_depend_on_image_and_epoch_and_fixed_captions_win()
    {
        var data = Data(12, 5);
        var t = New(1, data);
        t.TokenIds([3, 7], 0, out var a);
        t.TokenIds([7, 3], 0, out var b);
        Assert.Equal(a[0], b[1]);
        Assert.Equal(a[1], b[0]);
        var epochs = Enumerable.Range(0, 8).Select(e => { t.TokenIds([3], e, out var c); return c[0]; }).Distinct().Count();
        Assert.True(epochs > 1, "captions are drawn anew each epoch");

        var fixedCaptions = Enumerable.Range(0, 12).Select(i => $"item {i}").ToArray();
        var f = new LatentTrainer(TinyUNet, TinyText, Noise, Config(1), new LatentObjective(), Tokenizer(), data with { Captions = fixedCaptions });
        var ids = f.TokenIds([5], 3, out var fc);
        Assert.Equal("item 5", fc[0]);
        Assert.Equal(Tokenizer().Encode("item 5").InputIds, ids);
    }

    [Fact]
    public void Pipeline_folder_loads_back_with_the_same_outputs_and_diffusers_keys()
    {
        var data = Data(8, 6);
        var t = New(2, data);
        t.Step();
        t.Step();
        var vae = new AutoencoderKL(VaeGradientTests.Tiny, new Rng(3));
        using var dir = new TempDir();
        var weights = t.ExportWeights(t.Ema).ToList();
        PipelineFolder.SaveStableDiffusion(dir.Path, new(t.UNetConfig, LatentTrainer.Part(weights, TextToImageModel.UNetPrefix)),
            new(t.TextConfig, LatentTrainer.Part(weights, TextToImageModel.TextEncoderPrefix)), new(vae.Config, VaeFolder.Weights(vae)),
            TokenizerFolder, 8, SchedulerFactory.ConfigFor("dpm++2m", t.NoiseScheduler));
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(dir.Path));
        Assert.Equal(8, pipe.Tokenizer.MaxLength);
        Assert.Equal("DPMSolverMultistepScheduler", pipe.Scheduler.Config.ClassName);

        var ema = t.EmaModel();
        var ids = pipe.Tokenizer.Encode("a photo of a bag").InputIds;
        var x = Tensor.RandN([1, 2, 4, 4], new Rng(8));
        using (Tensor.NoGrad())
        {
            var c1 = ema.TextEncoder.Forward(ids, 1).LastHiddenState;
            var c2 = pipe.TextEncoder.Forward(ids, 1).LastHiddenState;
            Assert.Equal(c1.ToArray(), c2.ToArray());
            var ts = Tensor.FromArray([500f], 1);
            Assert.Equal(ema.UNet.Forward(x, ts, c1).ToArray(), pipe.UNet.Forward(x, ts, c2).ToArray());
        }

        string[] Keys(string file)
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, file)));
            return doc.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToArray();
        }
        // UNet2DConditionModel.__init__'s arguments in diffusers 0.27.2, and the two bookkeeping keys.
        Assert.Equal(["_class_name", "_diffusers_version", "act_fn", "addition_embed_type", "addition_embed_type_num_heads", "addition_time_embed_dim",
            "attention_head_dim", "attention_type", "block_out_channels", "center_input_sample", "class_embed_type", "class_embeddings_concat",
            "conv_in_kernel", "conv_out_kernel", "cross_attention_dim", "cross_attention_norm", "down_block_types", "downsample_padding", "dropout",
            "dual_cross_attention", "encoder_hid_dim", "encoder_hid_dim_type", "flip_sin_to_cos", "freq_shift", "in_channels", "layers_per_block",
            "mid_block_only_cross_attention", "mid_block_scale_factor", "mid_block_type", "norm_eps", "norm_num_groups", "num_attention_heads",
            "num_class_embeds", "only_cross_attention", "out_channels", "projection_class_embeddings_input_dim", "resnet_out_scale_factor",
            "resnet_skip_time_act", "resnet_time_scale_shift", "reverse_transformer_layers_per_block", "sample_size", "time_cond_proj_dim",
            "time_embedding_act_fn", "time_embedding_dim", "time_embedding_type", "timestep_post_act", "transformer_layers_per_block",
            "up_block_types", "upcast_attention", "use_linear_projection"], Keys("unet/config.json"));
        Assert.Contains("max_position_embeddings", Keys("text_encoder/config.json"));
        Assert.Equal(["_class_name", "_diffusers_version", "feature_extractor", "image_encoder", "requires_safety_checker", "safety_checker", "scheduler",
            "text_encoder", "tokenizer", "unet", "vae"], Keys("model_index.json"));
    }

    [Fact]
    public void Mismatched_parts_are_refused()
    {
        var data = Data(8, 7);
        var e = Assert.Throws<ArgumentException>(() => new LatentTrainer(TinyUNet with { BlockOutChannels = [8, 8, 8], LayersPerBlock = [1, 1, 1],
            DownBlockTypes = [DownBlockType.CrossAttnDownBlock2D, DownBlockType.DownBlock2D, DownBlockType.DownBlock2D],
            UpBlockTypes = [UpBlockType.UpBlock2D, UpBlockType.UpBlock2D, UpBlockType.CrossAttnUpBlock2D], NumHeads = [2, 2, 2], CrossAttentionDim = [8, 8, 8],
            OnlyCrossAttention = [false, false, false], TransformerLayersPerBlock = [[1], [1], [1]] } with { BlockOutChannels = [8, 8, 8] },
            TinyText, Noise, Config(1), new LatentObjective(), Tokenizer(), data with { Latents = new LatentCache(new float[8 * 2 * 6 * 6], new float[8 * 2 * 6 * 6], 8, [2, 6, 6], 1) }));
        Assert.Contains("cannot be halved", e.Message);
        e = Assert.Throws<ArgumentException>(() => new LatentTrainer(TinyUNet, TinyText with { HiddenSize = 16, ProjectionDim = 16 }, Noise, Config(1), new LatentObjective(), Tokenizer(), data));
        Assert.Contains("cross_attention_dim", e.Message);
        e = Assert.Throws<ArgumentException>(() => new LatentTrainer(TinyUNet, TinyText, Noise, Config(1), new LatentObjective(),
            new ClipTokenizer(Path.Combine(TokenizerFolder, "vocab.json"), Path.Combine(TokenizerFolder, "merges.txt"), maxLength: 16), data));
        Assert.Contains("max_position_embeddings", e.Message);
    }
}

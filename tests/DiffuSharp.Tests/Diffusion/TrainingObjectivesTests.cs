// v-prediction and min-SNR-γ against values derived by hand in double from the schedule (ᾱ = Π(1 − β), v =
// √ᾱ ε − √(1−ᾱ) x_0, SNR = ᾱ/(1−ᾱ), weights min(SNR, γ)/SNR for ε and min(SNR, γ)/(SNR + 1) for v), and sampling
// a v-model: its DDIM and DDPM steps equal the ε-model's steps fed ε = √(1−ᾱ) x_t + √ᾱ v.
using DiffuSharp.Diffusion;
using DiffuSharp.Models;
using Xunit;

namespace DiffuSharp.Tests.Diffusion;

public sealed class TrainingObjectivesTests
{
    const int T = 1000;

    static double[] AlphasCumprod(string schedule)
    {
        var betas = NoiseSchedule.GetNamedBetaSchedule(schedule, T);
        var a = new double[T];
        double acc = 1;
        for (int i = 0; i < T; i++) a[i] = acc *= 1 - betas[i];
        return a;
    }

    static GaussianDiffusion Diffusion(string schedule, bool v) => DiffusionFactory.Create(new DiffusionConfig(NoiseSchedule: schedule, PredictV: v));

    static (Tensor X0, Tensor Eps, Tensor Out) Data()
    {
        var rng = new Rng(8);
        return (Tensor.RandN([4, 2, 3, 3], rng), Tensor.RandN([4, 2, 3, 3], rng), Tensor.RandN([4, 2, 3, 3], rng));
    }

    static readonly int[] Ts = [0, 123, 500, 999];

    [Theory, InlineData("linear"), InlineData("cosine")]
    public void V_target_and_loss_match_the_hand_derivation(string schedule)
    {
        var d = Diffusion(schedule, v: true);
        Assert.Equal(ModelMeanType.Velocity, d.ModelMeanType);
        var ab = AlphasCumprod(schedule);
        var (x0, eps, outT) = Data();
        float[] x = x0.ToArray(), e = eps.ToArray(), o = outT.ToArray();
        var v = d.Velocity(x0, eps, Ts).ToArray();
        var loss = d.TrainingLosses((_, _) => outT, x0, Ts, eps).Loss.ToArray();
        for (int b = 0; b < 4; b++)
        {
            double sa = Math.Sqrt(ab[Ts[b]]), sb = Math.Sqrt(1 - ab[Ts[b]]), sum = 0;
            for (int i = 0; i < 18; i++)
            {
                int k = b * 18 + i;
                double vk = sa * e[k] - sb * x[k];
                Assert.Equal(vk, v[k], 5);
                sum += (vk - o[k]) * (vk - o[k]);
            }
            Assert.Equal(sum / 18, loss[b], 4);
        }
    }

    [Theory, InlineData(false, 5.0), InlineData(true, 5.0), InlineData(false, 1.0), InlineData(true, 0.5)]
    public void Min_snr_weights_match_the_hand_derivation(bool v, double gamma)
    {
        var d = Diffusion("cosine", v);
        var ab = AlphasCumprod("cosine");
        var (x0, eps, outT) = Data();
        var w = d.MinSnrWeights(Ts, gamma);
        var plain = d.TrainingLosses((_, _) => outT, x0, Ts, eps);
        var weighted = d.TrainingLosses((_, _) => outT, x0, Ts, eps, snrGamma: gamma);
        for (int b = 0; b < 4; b++)
        {
            double snr = ab[Ts[b]] / (1 - ab[Ts[b]]);
            double expected = v ? Math.Min(snr, gamma) / (snr + 1) : Math.Min(snr, gamma) / snr;
            Assert.Equal(expected, w[b], 6);
            Assert.Equal(plain.Loss.ToArray()[b] * expected, weighted.Loss.ToArray()[b], 5);
            Assert.Equal(plain.Mse!.ToArray()[b], weighted.Mse!.ToArray()[b]);   // Mse stays the plain term
        }
        // at t = 999 the SNR is tiny: the ε weight is 1 (SNR < γ), the v weight SNR/(SNR+1)
        Assert.True(w[3] > 0);
    }

    [Theory, InlineData("linear"), InlineData("cosine")]
    public void A_v_model_samples_as_the_eps_model_fed_the_converted_eps(string schedule)
    {
        var dv = DiffusionFactory.Create(new DiffusionConfig(NoiseSchedule: schedule, PredictV: true, TimestepRespacing: "ddim10"));
        var de = DiffusionFactory.Create(new DiffusionConfig(NoiseSchedule: schedule, TimestepRespacing: "ddim10"));
        var rng = new Rng(31);
        var x = Tensor.RandN([2, 1, 4, 4], rng);
        var z = Tensor.RandN([2, 1, 4, 4], rng);
        var w = Tensor.RandN([2, 1, 4, 4], rng);
        // an arbitrary smooth "v-model" of x
        Tensor VModel(Tensor xt) => (xt * 0.3 + w * 0.5).Tanh();
        foreach (int i in new[] { 9, 5, 1, 0 })
        {
            int[] t = [i, i];
            double ab = dv.AlphasCumprod[i];
            Tensor EpsModel(Tensor xt, Tensor _) => xt * Math.Sqrt(1 - ab) + VModel(xt) * Math.Sqrt(ab);
            foreach (bool clip in new[] { false, true })
            {
                using var _ = Tensor.NoGrad();
                var a = dv.DdimSample((xt, _) => VModel(xt), x, t, clipDenoised: clip).Sample.ToArray();
                var b = de.DdimSample(EpsModel, x, t, clipDenoised: clip).Sample.ToArray();
                for (int k = 0; k < a.Length; k++) Assert.True(Math.Abs(a[k] - b[k]) <= 2e-5 * (1 + Math.Abs(b[k])), $"DDIM t={i} clip={clip} [{k}]: {a[k]} vs {b[k]}");
                var p = dv.PSample((xt, _) => VModel(xt), x, t, z, clipDenoised: clip).Sample.ToArray();
                var q = de.PSample(EpsModel, x, t, z, clipDenoised: clip).Sample.ToArray();
                for (int k = 0; k < p.Length; k++) Assert.True(Math.Abs(p[k] - q[k]) <= 2e-5 * (1 + Math.Abs(q[k])), $"DDPM t={i} clip={clip} [{k}]: {p[k]} vs {q[k]}");
            }
        }
    }

    [Fact]
    public void Model_json_keys_round_trip_and_old_folders_load()
    {
        var old = ModelConfig.FromJson(new System.Text.Json.Nodes.JsonObject { ["class_cond"] = true, ["num_classes"] = 10, ["image_size"] = 28, ["attention_resolutions"] = "7", ["channel_mult"] = "1,2,2" }, "old.json");
        Assert.False(old.NullClass);
        Assert.Null(old.NullLabel);
        Assert.False(old.ToJson().ContainsKey("null_class"));               // unused keys are not written
        var c = old with { NullClass = true, ClassDropoutProb = 0.1, PredictV = true, SnrGamma = 5, NoiseOffset = 0.05 };
        var back = ModelConfig.FromJson(c.ToJson(), "new.json");
        Assert.Equal(c, back);
        Assert.Equal(10, back.NullLabel);
        Assert.Equal(11, back.ToUNetConfig().NumClasses + 1);
    }

    [Theory]
    [InlineData("{\"class_cond\": true, \"num_classes\": 10, \"image_size\": 28, \"class_dropout_prob\": 0.1}", "class_dropout_prob > 0 needs null_class")]
    [InlineData("{\"image_size\": 28, \"null_class\": true}", "null_class needs a class-conditional model")]
    [InlineData("{\"image_size\": 28, \"predict_v\": true, \"predict_xstart\": true}", "predict_v and predict_xstart are exclusive")]
    [InlineData("{\"image_size\": 28, \"snr_gamma\": -1}", "snr_gamma must be a non-negative number")]
    [InlineData("{\"image_size\": 28, \"noise_offset\": \"x\"}", "\"noise_offset\" must be a number")]
    public void Bad_objective_keys_name_the_key_and_file(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => ModelConfig.FromJson((System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(json)!, "m.json"));
        Assert.StartsWith("m.json: ", e.Message);
        Assert.Contains(expected, e.Message);
    }
}

// Training for classifier-free guidance: label dropout draws the null label at the requested rate, the null row of
// label_emb is trained only through dropped labels, --init_from copies a folder's weights (null row = mean of the
// class rows) and restarts the EMA from them, and offset noise is N(0,1) + offset·N(0,1) per (B, C, 1, 1).
using DiffuSharp.Models;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

[Collection(nameof(SerialCollection))]
public sealed class GuidanceTrainingTests
{
    [Theory, InlineData(0.1, 1UL), InlineData(0.25, 2UL), InlineData(0.5, 3UL)]
    public void Class_dropout_draws_the_null_label_at_the_expected_rate(double p, ulong seed)
    {
        const int n = 100_000;
        var labels = Enumerable.Range(0, n).Select(i => i % 10).ToArray();
        int dropped = ClassDropout.Apply(labels, p, nullLabel: 10, new Rng(seed));
        Assert.Equal(dropped, labels.Count(l => l == 10));
        double sd = Math.Sqrt(n * p * (1 - p));
        Assert.InRange(dropped, n * p - 5 * sd, n * p + 5 * sd);      // binomial(n, p), 5σ
        // the labels left are the original ones, in place
        for (int i = 0; i < n; i++) Assert.True(labels[i] == 10 || labels[i] == i % 10);
        // each class loses about the same share
        for (int k = 0; k < 10; k++) Assert.InRange(labels.Count(l => l == k), n / 10 * (1 - p) - 5 * Math.Sqrt(n / 10.0), n / 10 * (1 - p) + 5 * Math.Sqrt(n / 10.0));
    }

    [Fact]
    public void Class_dropout_of_zero_draws_nothing()
    {
        var rng = new Rng(9);
        var labels = new[] { 1, 2, 3 };
        Assert.Equal(0, ClassDropout.Apply(labels, 0, 10, rng));
        Assert.Equal([1, 2, 3], labels);
        Assert.Equal(new Rng(9).NextUInt64(), rng.NextUInt64());
        Assert.Throws<ArgumentOutOfRangeException>(() => ClassDropout.Apply(labels, 1.0, 10, rng));
    }

    static ModelConfig CfgModel(double p) => TrainingFixtures.TinyModel(classCond: true) with { NullClass = true, ClassDropoutProb = p };

    static TrainConfig Config(string dir) => new(BatchSize: 16, Lr: 1e-3, EmaRate: "0.9", TotalSteps: 10, Seed: 5, OutputFolder: dir);

    [Fact]
    public void The_null_row_learns_only_from_dropped_labels()
    {
        var data = TrainingFixtures.Synthetic(count: 32);
        float[] NullRow(Trainer tr) => tr.Model.NamedParameters().First(p => p.Name == "label_emb.weight").Param.ToArray()[(4 * 128)..];

        // Three steps: at the first, the zero-initialised output convolution passes no gradient upstream.
        var with = new Trainer(CfgModel(0.5), Config("unused"), data);
        var before = NullRow(with);
        for (int i = 0; i < 3; i++) with.Step();
        Assert.NotEqual(before, NullRow(with));

        var without = new Trainer(CfgModel(0.0), Config("unused"), data);   // a null row, never drawn
        before = NullRow(without);
        for (int i = 0; i < 3; i++) without.Step();
        Assert.Equal(before, NullRow(without));
    }

    [Fact]
    public void Init_from_copies_the_weights_adds_the_mean_row_and_restarts_the_ema()
    {
        string dir = TrainingFixtures.TempFolder("initfrom");
        try
        {
            var data = TrainingFixtures.Synthetic(count: 32);
            var source = new Trainer(TrainingFixtures.TinyModel(classCond: true), Config(dir) with { Seed = 77 }, data);
            source.Step();
            string folder = Path.Combine(dir, "src");
            source.SaveModelFolder(folder);
            var saved = source.ExportWeights(source.Emas[0]).ToDictionary(w => w.Name, w => w.Data);

            var tuned = new Trainer(CfgModel(0.1), Config(dir), data);
            tuned.InitializeFrom(folder);
            foreach (var (name, p) in tuned.Model.NamedParameters())
            {
                var got = p.ToArray();
                if (name != "label_emb.weight") { Assert.Equal(saved[name], got); continue; }
                int d = 128;
                Assert.Equal(saved[name], got[..(4 * d)]);
                for (int j = 0; j < d; j++)
                {
                    double mean = (saved[name][j] + (double)saved[name][d + j] + saved[name][2 * d + j] + saved[name][3 * d + j]) / 4;
                    Assert.True(Math.Abs(mean - got[4 * d + j]) <= 1e-6 * (1 + Math.Abs(mean)), $"null row [{j}]: {got[4 * d + j]} vs mean {mean}");
                }
            }
            Assert.Equal(tuned.Flat.Values, tuned.Emas[0].Shadow[0].ToArray());

            // A folder of another network is refused, naming the parameter.
            var other = new Trainer(TrainingFixtures.TinyModel(classCond: false), Config(dir), data);
            var e = Assert.Throws<InvalidDataException>(() => other.InitializeFrom(folder));
            Assert.Contains("label_emb", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Resume_with_every_new_objective_is_bit_identical()
    {
        // class dropout (the "labels" Rng), offset noise, min-SNR and v-prediction together: 4 + save + 4 = 8 steps.
        var model = CfgModel(0.3) with { NoiseOffset = 0.1, SnrGamma = 5, PredictV = true };
        var data = TrainingFixtures.Synthetic(count: 10);
        string dir = TrainingFixtures.TempFolder("resume-cfg");
        try
        {
            TrainConfig C(string sub) => new(BatchSize: 4, Lr: 2e-3, EmaRate: "0.9", TotalSteps: 8, Seed: 99, OutputFolder: Path.Combine(dir, sub));
            var straight = new Trainer(model, C("a"), data);
            var losses = Enumerable.Range(0, 8).Select(_ => straight.Step().Loss).ToArray();
            var first = new Trainer(model, C("b"), data);
            for (int i = 0; i < 4; i++) first.Step();
            Checkpoint.Save(first, Path.Combine(dir, "b"));
            var resumed = Checkpoint.Load(Checkpoint.Locate(Path.Combine(dir, "b")), data);
            Assert.Equal(model, resumed.ModelConfig);
            Assert.Equal(losses[4..], Enumerable.Range(0, 4).Select(_ => resumed.Step().Loss).ToArray());
            Assert.Equal(straight.Flat.Values, resumed.Flat.Values);
            Assert.Equal(straight.ExportState().Rngs["labels"], resumed.ExportState().Rngs["labels"]);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Offset_noise_is_pixel_noise_plus_a_per_channel_offset()
    {
        int[] shape = [3, 2, 4, 4];
        var eps = OffsetNoise.Draw(shape, 0.1, new Rng(21)).ToArray();
        // the same stream drawn by hand: 96 pixel normals, then 6 per-(B, C) normals
        var rng = new Rng(21);
        var z = new float[96];
        rng.FillNormal(z);
        var s = new float[6];
        rng.FillNormal(s);
        for (int i = 0; i < 96; i++) Assert.Equal(z[i] + 0.1 * s[i / 16], eps[i], 6);
        Assert.Equal(z, OffsetNoise.Draw(shape, 0, new Rng(21)).ToArray());
    }
}

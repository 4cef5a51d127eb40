// Captions of Fashion-MNIST: the measured attributes against an independent scipy computation
// (Fixtures/captions/make_fashion_attributes.py), the words against the class terciles, the shipped tercile table
// against a refit on the installed training set, and the drawing rules (deterministic per seed, 10% empty, the
// class's own nouns, articles).
using System.Text.Json;
using DiffuSharp.Data;
using Xunit;

namespace DiffuSharp.Tests.Data;

public sealed class FashionCaptionsTests
{
    sealed record AttributeFixture(int[][] images, int[] labels, double[] brightness, double[] size, double[] texture);

    static float[] FromBytes(int[] b) => b.Select(v => (float)(v / 127.5 - 1)).ToArray();

    [Fact]
    public void Attributes_match_an_independent_scipy_computation()
    {
        var f = JsonSerializer.Deserialize<AttributeFixture>(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "captions", "fashion_attributes.json")))!;
        Assert.Equal(50, f.images.Length);
        for (int i = 0; i < f.images.Length; i++)
        {
            var a = FashionAttributes.Measure(FromBytes(f.images[i]), 28, 28);
            Assert.True(Math.Abs(a.Brightness - f.brightness[i]) < 1e-6, $"image {i}: brightness {a.Brightness} vs {f.brightness[i]}");
            Assert.True(Math.Abs(a.Size - f.size[i]) < 1e-12, $"image {i}: size {a.Size} vs {f.size[i]}");
            Assert.True(Math.Abs(a.Texture - f.texture[i]) < 1e-6, $"image {i}: texture {a.Texture} vs {f.texture[i]}");
        }
    }

    [Fact]
    public void A_flat_block_is_plain_and_its_area_and_level_are_exact()
    {
        var img = Enumerable.Repeat(-1f, 28 * 28).ToArray();
        for (int y = 4; y < 24; y++)
            for (int x = 8; x < 18; x++) img[y * 28 + x] = 0.2f;                // gray 0.6 over 20×10 pixels
        var a = FashionAttributes.Measure(img, 28, 28);
        Assert.Equal(0.6, a.Brightness, 6);
        Assert.Equal(200.0 / 784, a.Size, 12);
        Assert.Equal(0.0, a.Texture, 6);

        for (int y = 4; y < 24; y++)
            for (int x = 8; x < 18; x++) img[y * 28 + x] = (x + y) % 2 == 0 ? 0.8f : -0.4f;   // a checkerboard: gray 0.9 / 0.3
        var b = FashionAttributes.Measure(img, 28, 28);
        Assert.Equal(0.6, b.Brightness, 6);
        Assert.True(b.Texture > 0.2, $"checkerboard texture {b.Texture}");        // |0.9 − (5·0.9 + 4·0.3)/9| = 0.267
    }

    [Fact]
    public void Words_follow_the_class_terciles()
    {
        var t = FashionCaptions.Thresholds[5];
        Assert.Equal(("small", "dark", "plain"), FashionCaptions.Words(new(t.DarkBelow - 1e-3, t.SmallBelow - 1e-3, t.PlainBelow - 1e-3), 5));
        Assert.Equal(("large", "light", "patterned"), FashionCaptions.Words(new(t.LightFrom, t.LargeFrom, t.PatternedFrom), 5));
        Assert.Equal(((string?)null, (string?)null, (string?)null),
            FashionCaptions.Words(new((t.DarkBelow + t.LightFrom) / 2, (t.SmallBelow + t.LargeFrom) / 2, (t.PlainBelow + t.PatternedFrom) / 2), 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => FashionCaptions.Words(new(0, 0, 0), 10));
    }

    [Fact]
    public void Fit_takes_the_terciles_of_each_class()
    {
        var attrs = Enumerable.Range(0, 9).Select(i => new FashionAttributes(i / 10.0, i / 100.0, i / 1000.0)).ToArray();
        var t = FashionCaptions.Fit(attrs, Enumerable.Repeat(0, 9).ToArray(), numClasses: 1)[0];
        Assert.Equal(new AttributeThresholds(0.3, 0.6, 0.03, 0.06, 0.003, 0.006), t);
    }

    [Fact]
    public void The_shipped_thresholds_are_the_terciles_of_the_training_set()
    {
        var train = FashionMnist.Load(train: true);
        var fitted = FashionCaptions.Fit(FashionCaptions.Measure(train), train.Labels!);
        Assert.Equal(fitted, FashionCaptions.Thresholds);
    }

    [Fact]
    public void Captions_are_deterministic_ten_percent_empty_and_name_their_class()
    {
        var test = FashionMnist.Load(train: false);
        var attrs = FashionCaptions.Measure(test);
        var a = FashionCaptions.ForDataset(attrs, test.Labels!, seed: 3);
        Assert.Equal(a, FashionCaptions.ForDataset(attrs, test.Labels!, seed: 3));
        var other = FashionCaptions.ForDataset(attrs, test.Labels!, seed: 3, epoch: 1);
        Assert.True(a.Zip(other).Count(p => p.First != p.Second) > 5000);
        // One caption depends on its index, not on the rest of the list.
        Assert.Equal(a[1234], FashionCaptions.CaptionFor(1234, test.Labels![1234], attrs[1234], seed: 3));
        double empty = a.Count(c => c.Length == 0) / (double)a.Length;
        Assert.InRange(empty, 0.09, 0.11);
        var allNouns = FashionCaptions.Nouns.SelectMany(n => n).Select(n => n.Text).ToArray();
        int named = 0, dark = 0, light = 0;
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i].Length == 0) continue;
            int label = test.Labels![i];
            // The longest noun of any class found in the caption is one of its own class.
            string found = allNouns.Where(n => a[i].EndsWith(n, StringComparison.Ordinal)).OrderByDescending(n => n.Length).First();
            Assert.Contains(FashionCaptions.Nouns[label], n => n.Text == found);
            if (found == FashionCaptions.ClassNames[label]) named++;
            var (size, brightness, texture) = FashionCaptions.Words(attrs[i], label);
            var words = a[i].Split(' ');
            if (words.Contains("dark")) { Assert.Equal("dark", brightness); dark++; }
            if (words.Contains("light")) { Assert.Equal("light", brightness); light++; }
            if (words.Contains("small")) Assert.Equal("small", size);
            if (words.Contains("large")) Assert.Equal("large", size);
            if (words.Contains("plain")) Assert.Equal("plain", texture);
            if (words.Contains("patterned")) Assert.Equal("patterned", texture);
        }
        int nonEmpty = a.Count(c => c.Length > 0);
        Assert.InRange(named / (double)nonEmpty, 0.55, 0.65);                 // the class name 60% of the time
        Assert.InRange(dark / (double)nonEmpty, 0.2, 0.34);                    // about a third × 0.8
        Assert.InRange(light / (double)nonEmpty, 0.2, 0.34);
    }

    [Theory]
    [InlineData("ankle boot", false, "an ankle boot")]
    [InlineData("large bag", false, "a large bag")]
    [InlineData("trousers", true, "trousers")]
    public void Articles(string phrase, bool plural, string expected) => Assert.Equal(expected, FashionCaptions.WithArticle(phrase, plural));

    [Fact]
    public void A_caption_uses_one_of_the_templates()
    {
        var rng = new Rng(1);
        var attrs = new FashionAttributes(0.1, 0.9, 0.9);                        // dark, large, patterned for a bag
        var seen = new HashSet<string>();
        for (int i = 0; i < 400; i++)
        {
            string c = FashionCaptions.Caption(8, attrs, rng);
            if (c.Length == 0) continue;
            seen.Add(c);
            Assert.Matches("^(a photo of |a picture of |a product photo of )?(an? )?(large )?(dark )?(patterned )?(bag|handbag|purse)$", c);
        }
        Assert.Contains("a photo of a large dark patterned bag", seen);
        Assert.Contains("large dark patterned bag", seen);
        Assert.Contains(seen, c => !c.Contains("dark"));                           // words are dropped, one at a time
        Assert.Contains(seen, c => c.EndsWith("purse", StringComparison.Ordinal));
    }

    [Fact]
    public void Bare_captions_name_the_garment_whatever_its_attributes_and_zero_keeps_the_old_draw()
    {
        var attrs = new FashionAttributes(0.1, 0.9, 0.9);                        // dark, large, patterned for a bag: always has words to say
        string[] attributeWords = ["small", "large", "dark", "light", "plain", "patterned"];
        bool HasWord(string c) => c.Split(' ').Any(attributeWords.Contains);
        // The old draw (no bare captions) is unchanged: BareProbability 0 takes no extra random number.
        var (r0, r1) = (new Rng(4), new Rng(4));
        for (int i = 0; i < 200; i++)
            Assert.Equal(FashionCaptions.Caption(8, attrs, r0), FashionCaptions.Caption(8, attrs, r1, new CaptionOptions(BareProbability: 0)));
        // All bare: never an attribute word, always a noun of the class.
        var rng = new Rng(5);
        for (int i = 0; i < 200; i++)
        {
            string c = FashionCaptions.Caption(8, attrs, rng, new CaptionOptions(BareProbability: 1));
            Assert.False(HasWord(c), c);
            if (c.Length > 0) Assert.Matches("(bag|handbag|purse)$", c);
        }
        // At 0.5, about half the non-empty captions of an image with three words to say have none (0.5 + 0.5 · 0.2³).
        rng = new Rng(6);
        var half = Enumerable.Range(0, 4000).Select(_ => FashionCaptions.Caption(8, attrs, rng, new CaptionOptions(BareProbability: 0.5))).Where(c => c.Length > 0).ToArray();
        Assert.InRange(half.Count(c => !HasWord(c)) / (double)half.Length, 0.47, 0.54);
        Assert.Throws<ArgumentException>(() => new CaptionOptions(BareProbability: 1.5).Validate());
    }
}

// Batches: epochs are permutations, seeds reproduce, flips mirror, labels follow their images; SplitMix64.
using DiffuSharp.Data;
using Xunit;

namespace DiffuSharp.Tests.Data;

public sealed class BatchesTests
{
    static ImageDataset Numbered(int n, int h = 2, int w = 3)
    {
        var images = new float[n * h * w];
        for (int i = 0; i < images.Length; i++) images[i] = i;      // image k holds k·hw … k·hw + hw − 1
        return new ImageDataset(images, n, 1, h, w, Enumerable.Range(0, n).Select(i => i % 4).ToArray(), numClasses: 4);
    }

    [Fact]
    public void An_epoch_is_a_permutation_without_the_remainder()
    {
        var ds = Numbered(10);
        var b = new Batches(ds, 3, new SplitMix64(1));
        Assert.Equal(3, b.BatchesPerEpoch);
        var seen = new List<int>();
        var idx = new int[3];
        var img = new float[3 * 6];
        for (int k = 0; k < 3; k++)
        {
            b.Next(img, indices: idx);
            Assert.Equal(0, b.Epoch);
            for (int j = 0; j < 3; j++) Assert.Equal(idx[j] * 6f, img[j * 6]);
            seen.AddRange(idx);
        }
        Assert.Equal(9, seen.Distinct().Count());
        b.Next(img);
        Assert.Equal(1, b.Epoch);
    }

    [Fact]
    public void Same_seed_same_batches_and_labels_follow_images()
    {
        var ds = Numbered(17);
        var a = new Batches(ds, 4, new SplitMix64(42), randomFlip: true);
        var c = new Batches(ds, 4, new SplitMix64(42), randomFlip: true);
        var d = new Batches(ds, 4, new SplitMix64(43), randomFlip: true);
        bool anyDifferent = false;
        for (int k = 0; k < 10; k++)
        {
            var (ia, la) = a.Next();
            var (ic, lc) = c.Next();
            var (id, _) = d.Next();
            Assert.Equal(ia, ic);
            Assert.Equal(la, lc);
            anyDifferent |= !ia.SequenceEqual(id);
            for (int j = 0; j < 4; j++)
                Assert.Equal((int)(ia[j * 6] / 6) % 4, la![j]);     // flips stay inside the image's own floats
        }
        Assert.True(anyDifferent);
    }

    [Fact]
    public void Flip_mirrors_every_row_of_every_channel()
    {
        var images = new float[2 * 2 * 3];                          // one image, (C=2, H=2, W=3)
        for (int i = 0; i < images.Length; i++) images[i] = i;
        var ds = new ImageDataset(images, 1, 2, 2, 3);
        var b = new Batches(ds, 1, new SplitMix64(0), randomFlip: true);
        bool sawFlip = false, sawPlain = false;
        for (int k = 0; k < 40; k++)
        {
            var (x, labels) = b.Next();
            Assert.Null(labels);
            if (x[0] == 0) { sawPlain = true; Assert.Equal(images, x); }
            else { sawFlip = true; Assert.Equal(new float[] { 2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9 }, x); }
        }
        Assert.True(sawFlip && sawPlain);
    }

    [Fact]
    public void Bad_arguments()
    {
        var ds = Numbered(5);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Batches(ds, 6, new SplitMix64(0)));
        var b = new Batches(ds, 2, new SplitMix64(0));
        Assert.Throws<ArgumentException>(() => b.Next(new float[11]));
        Assert.Throws<ArgumentException>(() => b.Next(new float[12], new int[3]));
    }

    [Fact]
    public void SplitMix64_matches_the_reference_sequence_and_is_uniform()
    {
        var r = new SplitMix64(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, r.NextUInt64());         // splitmix64.c with x = 0
        var counts = new int[7];
        var g = new SplitMix64(99);
        for (int i = 0; i < 70000; i++) counts[g.NextInt(7)]++;
        Assert.All(counts, n => Assert.InRange(n, 9500, 10500));
        Assert.Throws<ArgumentOutOfRangeException>(() => g.NextInt(0));
        Assert.Equal(0, g.NextInt(1));
    }
}

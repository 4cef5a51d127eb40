// LatentCache: the cached posterior equals encoding the padded images directly; a sample is scaling_factor ·
// (mean + std·ε) with ε from the Rng; the file round-trips and a non-finite value is refused.
using DiffuSharp.Data;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Training;

public sealed class LatentCacheTests
{
    [Fact]
    public void Caches_the_posterior_samples_and_round_trips()
    {
        var vae = new AutoencoderKL(VaeGradientTests.Tiny with { ScalingFactor = 0.5 }, new Rng(3));
        vae.Eval();
        var img = Tensor.Rand([5, 1, 6, 6], new Rng(4), -1f, 1f).ToArray();
        var data = new ImageDataset(img, 5, 1, 6, 6, [0, 1, 2, 1, 0], 3);
        var cache = LatentCache.Encode(vae, data, pad: 1, batch: 2);
        Assert.Equal([2, 4, 4], cache.LatentShape);

        var padded = ImagePadding.Pad(data, 1);
        using (Tensor.NoGrad())
        {
            var post = vae.Encode(Tensor.FromArray(padded.Images, 5, 1, 8, 8));
            Assert.Equal(post.Mean.ToArray(), cache.Mean);
            Assert.Equal(post.Std.ToArray(), cache.Std);
        }
        var z = cache.Sample([3, 0], new Rng(9)).ToArray();
        var eps = new float[64];
        new Rng(9).FillNormal(eps);
        for (int k = 0; k < 32; k++)
        {
            Assert.Equal(0.5f * (cache.Mean[3 * 32 + k] + cache.Std[3 * 32 + k] * eps[k]), z[k]);
            Assert.Equal(0.5f * (cache.Mean[k] + cache.Std[k] * eps[32 + k]), z[32 + k]);
        }

        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "latents.safetensors");
        cache.Save(path);
        var back = LatentCache.Load(path);
        Assert.Equal(cache.Mean, back.Mean);
        Assert.Equal(cache.Std, back.Std);
        Assert.Equal(0.5, back.ScalingFactor);
        Assert.Equal([0, 1, 2, 1, 0], back.Labels!);

        cache.Mean[7] = float.NaN;
        cache.Save(path);
        Assert.Contains("mean", Assert.Throws<InvalidDataException>(() => LatentCache.Load(path)).Message);
    }
}

// Tiled VAE decoding against diffusers 0.27.2's AutoencoderKL.tiled_decode (Fixtures/vae_tiled_decode.safetensors, made
// by make_vae_tiling.py on the tiny_sd VAE): the VAE's own tiles (8 latents, overlap 0.25: tiles at 0, 6, 12, the last
// only 2 latents wide) and tiles of 12 latents reproduce diffusers within 1e-5 relative L2 (float32 convolutions in
// another order: 1e-6 expected). A tile covering the whole latent is the plain decode, bit for bit.
// Tiled against plain decoding is NOT close on this VAE: diffusers itself gives 0.70 relative L2 (tiles of 8) and 0.44
// (tiles of 12) on it (metadata rel_to_plain): its random weights and GroupNorm of 4 groups make every pixel depend on
// its tile's statistics. The bound checked here is the one tiling can promise on any VAE: each tile's own pixels are
// its decode, so the rows and columns no blend reaches equal the plain decode of that tile's latents.
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using Xunit;

namespace DiffuSharp.Tests.Pipelines;

public class VaeTilingTests
{
    static readonly string TinySd = Path.Combine(TestPaths.Diffusers, "pipelines", "tiny_sd");
    static readonly string FixturePath = Path.Combine(TestPaths.Fixtures, "vae_tiled_decode.safetensors");

    static double RelL2(float[] a, float[] b)
    {
        Assert.Equal(b.Length, a.Length);
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++) { num += (a[i] - (double)b[i]) * (a[i] - (double)b[i]); den += (double)b[i] * b[i]; }
        return Math.Sqrt(num / den);
    }

    [Theory, InlineData("tiled_default", 8), InlineData("tiled_12", 12)]
    public void Tiled_decode_matches_diffusers(string output, int tile)
    {
        var vae = ComponentLoader.LoadAutoencoderKL(Path.Combine(TinySd, "vae"));
        var f = SafeTensorsFile.Open(FixturePath);
        var z = Tensor.FromArray(f.ReadFloat32("input.latents"), [.. f.Info("input.latents").Shape.Select(d => (int)d)]);
        var tiling = tile == 8 ? VaeTiling.For(vae.Config) : new VaeTiling(tile);
        Assert.Equal(tile, tiling.TileLatents);
        var ours = vae.DecodeTiled(z, tiling);
        Assert.Equal([.. f.Info("output." + output).Shape.Select(d => (int)d)], ours.Shape);
        double rel = RelL2(ours.ToArray(), f.ReadFloat32("output." + output));
        Assert.True(rel < 1e-5, $"{output}: relative L2 {rel:E2}");
    }

    [Fact]
    public void One_tile_over_the_whole_latent_is_the_plain_decode()
    {
        var vae = ComponentLoader.LoadAutoencoderKL(Path.Combine(TinySd, "vae"));
        var z = Tensor.RandN([2, 4, 6, 5], new Rng(3));
        var plain = vae.Decode(z).ToArray();
        Assert.Equal(plain, vae.DecodeTiled(z, new VaeTiling(8)).ToArray());     // stride 6: one tile

        // the pipeline decodes in one piece when the latents fit one tile (tile size = the whole latent), as diffusers'
        // decode does, and tile by tile when they do not
        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(TinySd));
        var tiledPipe = pipe.WithVaeTiling(new VaeTiling(8));
        var small = Tensor.RandN([1, 4, 8, 8], new Rng(4));
        Assert.Equal(pipe.Decode(small).ToArray(), tiledPipe.Decode(small).ToArray());
        var large = Tensor.RandN([1, 4, 8, 12], new Rng(4));
        var expected = (vae.DecodeTiled(large / vae.ScalingFactor, new VaeTiling(8)) / 2.0 + 0.5).Clamp(0, 1);
        Assert.Equal(expected.ToArray(), tiledPipe.Decode(large).ToArray());
        Assert.NotEqual(pipe.Decode(large).ToArray(), tiledPipe.Decode(large).ToArray());
    }

    [Fact]
    public void Pixels_no_blend_reaches_are_their_tiles_plain_decode()
    {
        var vae = ComponentLoader.LoadAutoencoderKL(Path.Combine(TinySd, "vae"));
        var z = Tensor.RandN([1, 4, 10, 14], new Rng(5));
        var tiled = vae.DecodeTiled(z, new VaeTiling(8));                           // (1, 3, 80, 112): stride 6 = 48 px, blends 16 px
        // tile (1, 1) covers latents 6..13 × 6..13; its pixels 16..47 in both directions are its own, unblended
        var own = vae.Decode(z.Slice(2, 6, 4).Slice(3, 6, 8).Contiguous());          // rows 6..9 (the last tile is 4 latents tall)
        var t = tiled.ToArray();
        var o = own.ToArray();                                                       // (1, 3, 32, 64)
        double worst = 0;
        for (int c = 0; c < 3; c++)
            for (int y = 16; y < 32; y++)
                for (int x = 16; x < 48; x++)
                    worst = Math.Max(worst, Math.Abs(t[(c * 80 + 48 + y) * 112 + 48 + x] - o[(c * 32 + y) * 64 + x]));
        Assert.Equal(0, worst);
    }

    [Theory, InlineData(0, 0.25), InlineData(4, 1.0), InlineData(1, 0.5)]
    public void Tilings_that_do_not_advance_are_refused(int tile, double overlap)
    {
        var vae = ComponentLoader.LoadAutoencoderKL(Path.Combine(TinySd, "vae"));
        Assert.Throws<ArgumentException>(() => vae.DecodeTiled(Tensor.Zeros([1, 4, 8, 8]), new VaeTiling(tile, overlap)));
    }
}

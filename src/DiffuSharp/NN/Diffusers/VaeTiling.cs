// Tiled VAE decoding, as diffusers 0.27.2's AutoencoderKL.tiled_decode (enable_tiling, models/autoencoders/
// autoencoder_kl.py): the latents are cut into square tiles of T latents that start every S = ⌊T·(1 − overlap)⌋
// latents, each tile is decoded on its own (post_quant_conv + decoder), and each decoded tile is blended into the
// tile above and the tile to its left over E = T·f − S·f pixels (f = the VAE's scale factor) with linear weights
// (y / E for the new tile, 1 − y / E for the old), then cropped to its first S·f rows and columns. Memory is bounded
// by one tile's activations instead of the whole image's.
// As diffusers, the blends happen in place, in row-major tile order, so a tile's bottom edge is read after its own
// left and top edges were blended. Deviation: diffusers crops to T_sample − ⌊T_sample·overlap⌋ pixels, which equals
// S·f only when T·(1 − overlap) is whole (the defaults: 64 → 48 latents, 384 pixels); otherwise its tiles overlap by
// a different amount than they are cropped and the image comes out larger than f × the latents. Here the crop is
// always S·f, so the output is the plain decode's size.
namespace DiffuSharp.NN.Diffusers;

/// <summary>Tiled decoding settings: tiles of <paramref name="TileLatents"/> latents per side overlapping by
/// <paramref name="Overlap"/> of a tile (diffusers' tile_latent_min_size and tile_overlap_factor).</summary>
public sealed record VaeTiling(int TileLatents, double Overlap = 0.25)
{
    /// <summary>diffusers' defaults for a VAE: tiles of sample_size pixels (64 latents for SD 1.x's 512), overlap 0.25.</summary>
    public static VaeTiling For(AutoencoderKLConfig config) => new(config.SampleSize >> (config.BlockOutChannels.Length - 1));

    /// <summary>Latents between the starts of two neighbouring tiles.</summary>
    public int Stride => (int)(TileLatents * (1 - Overlap));

    internal void Validate()
    {
        if (TileLatents < 1) throw new ArgumentException($"VAE tiles must be at least 1 latent wide, got {TileLatents}");
        if (!(Overlap >= 0 && Overlap < 1)) throw new ArgumentException($"the VAE tile overlap must lie in [0, 1), got {Overlap}");
        if (Stride < 1) throw new ArgumentException($"VAE tiles of {TileLatents} latents overlapping by {Overlap} do not advance");
    }
}

/// <summary>Tiled VAE decoding as diffusers' AutoencoderKL.tiled_decode: latents decoded in overlapping square tiles
/// blended linearly at the seams, so memory is bounded by one tile's activations; the output has the plain decode's
/// size.</summary>
public static class VaeTiledDecode
{
    /// <summary>z: (B, latent, h, w), unscaled → (B, Cout, h·f, w·f), decoded tile by tile.</summary>
    public static Tensor DecodeTiled(this AutoencoderKL vae, Tensor z, VaeTiling tiling)
    {
        tiling.Validate();
        if (z.Rank != 4 || z.Dim(1) != vae.Config.LatentChannels)
            throw new ArgumentException($"AutoencoderKL.DecodeTiled expects (B, {vae.Config.LatentChannels}, h, w), got {ShapeUtil.Format(z.Shape)}");
        int f = 1 << (vae.Config.BlockOutChannels.Length - 1);
        int tile = tiling.TileLatents, stride = tiling.Stride;
        int limit = stride * f, blend = tile * f - limit;                    // pixels kept per tile, pixels blended
        int h = z.Dim(2), w = z.Dim(3);
        int rows = (h + stride - 1) / stride, cols = (w + stride - 1) / stride;
        var tiles = new Tile[rows, cols];
        using var _ = Tensor.NoGrad();
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                int y0 = i * stride, x0 = j * stride;
                var part = z.Slice(2, y0, Math.Min(tile, h - y0)).Slice(3, x0, Math.Min(tile, w - x0));   // (B, latent, ≤T, ≤T)
                var decoded = vae.Decode(part.Contiguous());                                             // (B, C, ≤T·f, ≤T·f)
                tiles[i, j] = new Tile(decoded.Contiguous().ToArray(), decoded.Dim(0) * decoded.Dim(1), decoded.Dim(2), decoded.Dim(3));
            }
        int planes = tiles[0, 0].Planes, outH = h * f, outW = w * f;
        var output = new float[planes * outH * outW];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                var t = tiles[i, j];
                if (i > 0) BlendVertical(tiles[i - 1, j], t, blend);
                if (j > 0) BlendHorizontal(tiles[i, j - 1], t, blend);
                int keepH = Math.Min(limit, t.H), keepW = Math.Min(limit, t.W);
                for (int p = 0; p < planes; p++)
                    for (int y = 0; y < keepH; y++)
                        Array.Copy(t.Data, (p * t.H + y) * t.W, output, ((long)p * outH + i * limit + y) * outW + j * limit, keepW);
            }
        return Tensor.FromArray(output, z.Dim(0), planes / z.Dim(0), outH, outW);
    }

    /// <summary>A decoded tile: <see cref="Planes"/> = B·C planes of H × W.</summary>
    sealed record Tile(float[] Data, int Planes, int H, int W);

    /// <summary>b's first e rows ← a's last e rows · (1 − y/e) + b's rows · y/e, e = min(a.H, b.H, extent).</summary>
    static void BlendVertical(Tile a, Tile b, int extent)
    {
        int e = Math.Min(Math.Min(a.H, b.H), extent);
        for (int p = 0; p < b.Planes; p++)
            for (int y = 0; y < e; y++)
            {
                float wb = (float)((double)y / e), wa = (float)(1 - (double)y / e);
                int ra = (p * a.H + a.H - e + y) * a.W, rb = (p * b.H + y) * b.W;
                for (int x = 0; x < b.W; x++) b.Data[rb + x] = a.Data[ra + x] * wa + b.Data[rb + x] * wb;
            }
    }

    /// <summary>b's first e columns ← a's last e columns · (1 − x/e) + b's columns · x/e, e = min(a.W, b.W, extent).</summary>
    static void BlendHorizontal(Tile a, Tile b, int extent)
    {
        int e = Math.Min(Math.Min(a.W, b.W), extent);
        for (int p = 0; p < b.Planes; p++)
            for (int y = 0; y < b.H; y++)
            {
                int ra = (p * a.H + y) * a.W + a.W - e, rb = (p * b.H + y) * b.W;
                for (int x = 0; x < e; x++)
                {
                    float wb = (float)((double)x / e), wa = (float)(1 - (double)x / e);
                    b.Data[rb + x] = a.Data[ra + x] * wa + b.Data[rb + x] * wb;
                }
            }
    }
}

// The batches both latent trainers learn from (text to image: LatentTrainer; ControlNet: ControlNetTrainer): image
// indices drawn by a DataLoader; each image's caption (its fixed one, or FashionCaptions' draw for the epoch) tokenized;
// z sampled from the cached VAE posterior; ε plain or offset noise; t uniform in [0, T); x_t = √ᾱ_t z + √(1 − ᾱ_t) ε
// with ᾱ from the noise scheduler's config (diffusers' DDPMScheduler.add_noise) and the target ε, v = √ᾱ ε − √(1 − ᾱ) z
// or z by prediction_type; min-SNR-γ weights on the same ᾱ. The Rngs are the trainer's, forked in its own order and
// saved in its checkpoint, so a trainer's draws do not depend on this class being shared.
using DiffuSharp.Data;
using DiffuSharp.Diffusion;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;

namespace DiffuSharp.Training;

/// <summary>One drawn batch of noisy latents and what the network must predict from them.</summary>
/// <param name="Images">the dataset indices of the batch's images</param>
/// <param name="Ids">their captions' token ids (B, L)</param>
/// <param name="Timesteps">t of each image</param>
/// <param name="Noisy">x_t (B, C, h, w)</param>
/// <param name="Target">ε, v or z by the scheduler's prediction_type (B, C, h, w)</param>
/// <param name="Shape">(B, C, h, w)</param>
public sealed record NoisedLatentBatch(int[] Images, int[] Ids, int[] Timesteps, float[] Noisy, float[] Target, int[] Shape);

/// <summary>Draws <see cref="NoisedLatentBatch"/>es from captioned latents (see the file header).</summary>
public sealed class NoisedLatentBatches
{
    readonly Rng _latentRng, _timeRng, _noiseRng;
    readonly DataLoader _data;
    readonly float[] _indexBuffer;
    readonly double[] _alphasCumprod;
    readonly CaptionedLatents _source;
    readonly ClipTokenizer _tokenizer;
    readonly SchedulerConfig _scheduler;
    readonly ulong _captionSeed;
    readonly double _noiseOffset;

    /// <summary>Batches of <paramref name="batchSize"/> from <paramref name="data"/>; the loader shuffles with
    /// <paramref name="dataRng"/>, captions are drawn from <paramref name="captionSeed"/> and the epoch.</summary>
    public NoisedLatentBatches(CaptionedLatents data, ClipTokenizer tokenizer, SchedulerConfig noiseScheduler, int batchSize,
        ulong captionSeed, double noiseOffset, Rng dataRng, Rng latentRng, Rng timeRng, Rng noiseRng)
    {
        (_source, _tokenizer, _scheduler, _captionSeed, _noiseOffset) = (data, tokenizer, noiseScheduler, captionSeed, noiseOffset);
        (_latentRng, _timeRng, _noiseRng) = (latentRng, timeRng, noiseRng);
        // The loader shuffles image indices: each "image" is its own index, one float (exact below 2^24).
        var indices = new float[data.Count];
        for (int i = 0; i < indices.Length; i++) indices[i] = i;
        _data = new DataLoader(new ImageDataset(indices, data.Count, 1, 1, 1), batchSize, dataRng);
        _indexBuffer = new float[batchSize];
        _alphasCumprod = ScheduleMath.AlphasCumprod(ScheduleMath.Betas(noiseScheduler));
    }

    /// <summary>The epoch the next batch is drawn from (captions are drawn afresh each epoch).</summary>
    public int Epoch => _data.Epoch;

    /// <summary>The loader's position, for checkpoints.</summary>
    public DataLoaderState GetState() => _data.GetState();

    /// <summary>Restores <see cref="GetState"/>'s position.</summary>
    public void SetState(DataLoaderState state) => _data.SetState(state);

    /// <summary>The token ids (B, L) of the captions of these images in this epoch (their fixed captions, if given).</summary>
    public int[] TokenIds(ReadOnlySpan<int> images, int epoch, out string[] captions)
    {
        int L = _tokenizer.MaxLength;
        var ids = new int[images.Length * L];
        captions = new string[images.Length];
        for (int b = 0; b < images.Length; b++)
        {
            int i = images[b];
            captions[b] = _source.Captions?[i] ?? FashionCaptions.CaptionFor(i, _source.Labels[i], _source.Attributes[i], _captionSeed, epoch, _source.Drawing);
            _tokenizer.Encode(captions[b]).InputIds.CopyTo(ids, b * L);
        }
        return ids;
    }

    /// <summary>The next batch: indices, caption ids, latents, noise and timesteps, in that order of draws.</summary>
    public NoisedLatentBatch Next()
    {
        int B = _indexBuffer.Length;
        _data.Next(_indexBuffer, []);
        var images = new int[B];
        for (int b = 0; b < B; b++) images[b] = (int)_indexBuffer[b];
        var ids = TokenIds(images, _data.Epoch, out _);

        int[] shape = [B, .. _source.Latents.LatentShape];
        var z = _source.Latents.Sample(images, _latentRng).ToArray();                // (B, C, h, w), scaled
        int len = z.Length / B;
        var eps = _noiseOffset > 0
            ? OffsetNoise.Draw(shape, _noiseOffset, _noiseRng).ToArray()
            : Tensor.RandN(shape, _noiseRng).ToArray();
        var t = new int[B];
        for (int b = 0; b < B; b++) t[b] = _timeRng.NextInt(_scheduler.NumTrainTimesteps);
        var xt = new float[z.Length];
        var target = new float[z.Length];
        var prediction = _scheduler.PredictionType;
        for (int b = 0; b < B; b++)
        {
            float a = (float)Math.Sqrt(_alphasCumprod[t[b]]), s = (float)Math.Sqrt(1 - _alphasCumprod[t[b]]);
            for (int k = b * len; k < (b + 1) * len; k++)
            {
                xt[k] = a * z[k] + s * eps[k];
                target[k] = prediction switch
                {
                    PredictionType.VPrediction => a * eps[k] - s * z[k],
                    PredictionType.Sample => z[k],
                    _ => eps[k],
                };
            }
        }
        return new NoisedLatentBatch(images, ids, t, xt, target, shape);
    }

    /// <summary>The loss of the network's <paramref name="output"/> on <paramref name="batch"/>: the MSE against the target
    /// per sample (B), min-SNR-γ weighted when γ > 0, averaged over the batch; and the unweighted per-sample MSE.</summary>
    public (Tensor Loss, Tensor Mse) Loss(Tensor output, NoisedLatentBatch batch, double snrGamma)
    {
        var mse = DiffusionLosses.MeanFlat((Tensor.FromArray(batch.Target, batch.Shape) - output).Square());   // (B)
        var weighted = snrGamma > 0 ? mse * Tensor.Wrap(MinSnrWeights(batch.Timesteps, snrGamma), batch.Shape[0]) : mse;
        return (weighted.Mean(), mse);
    }

    /// <summary>min(SNR_t, γ)/SNR_t for ε, min(SNR_t, γ)/(SNR_t + 1) for v, min(SNR_t, γ) for x_0 (Hang et al. 2023, as
    /// diffusers' compute_snr weighting).</summary>
    public float[] MinSnrWeights(int[] t, double gamma)
    {
        var w = new float[t.Length];
        for (int b = 0; b < t.Length; b++)
        {
            double a = _alphasCumprod[t[b]], snr = a / (1 - a), clipped = Math.Min(snr, gamma);
            w[b] = (float)(_scheduler.PredictionType switch
            {
                PredictionType.VPrediction => clipped / (snr + 1),
                PredictionType.Sample => clipped,
                _ => clipped / snr,
            });
        }
        return w;
    }
}

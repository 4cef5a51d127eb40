// Shuffled minibatches drawn from an ImageDataset, as improved-diffusion's load_data does with a shuffling
// DataLoader and drop_last=True: each epoch is a fresh permutation, cut into whole batches; the leftover images
// of an epoch are skipped. Optional random horizontal flip per image. All randomness comes from an IIndexRng,
// in a fixed order (the permutation at the start of an epoch, then one flip draw per image), so a seeded
// generator reproduces the batches exactly.
namespace DiffuSharp.Data;

/// <summary>A source of uniform random indices; the engine's seeded RNG can implement it.</summary>
public interface IIndexRng
{
    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>).</summary>
    int NextInt(int maxExclusive);
}

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014), a small seeded generator; bounded draws use Lemire's unbiased
/// multiply-and-reject method.
/// </summary>
public sealed class SplitMix64 : IIndexRng
{
    ulong _state;

    /// <summary>A generator whose sequence follows from <paramref name="seed"/> (any value, zero included).</summary>
    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>The next 64 SplitMix64 output bits.</summary>
    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>) without modulo bias (Lemire's method); throws
    /// when maxExclusive is not positive.</summary>
    public int NextInt(int maxExclusive)
    {
        if (maxExclusive <= 0) throw new ArgumentOutOfRangeException(nameof(maxExclusive), $"must be positive, got {maxExclusive}");
        uint s = (uint)maxExclusive;
        ulong m = (NextUInt64() >> 32) * s;
        uint low = (uint)m;
        if (low < s)
        {
            uint threshold = (0u - s) % s;                          // 2³² mod s: the biased low values to reject
            while (low < threshold)
            {
                m = (NextUInt64() >> 32) * s;
                low = (uint)m;
            }
        }
        return (int)(m >> 32);
    }
}

/// <summary>Shuffled minibatches of an <see cref="ImageDataset"/>, as improved-diffusion's load_data (drop_last): each
/// epoch a fresh permutation cut into whole batches, leftovers skipped, with an optional random horizontal flip per
/// image. A seeded <see cref="IIndexRng"/> reproduces the batches exactly.</summary>
public sealed class Batches
{
    readonly ImageDataset _data;
    readonly IIndexRng _rng;
    readonly int[] _order;
    int _next;

    /// <param name="randomFlip">Mirror each drawn image left-right with probability ½.</param>
    public Batches(ImageDataset data, int batchSize, IIndexRng rng, bool randomFlip = false)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(rng);
        if (batchSize < 1 || batchSize > data.Count)
            throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch size {batchSize} must be in 1..{data.Count} (the dataset size)");
        (_data, _rng, BatchSize, RandomFlip) = (data, rng, batchSize, randomFlip);
        _order = new int[data.Count];
        _next = _order.Length;                                      // first Next() shuffles
        Epoch = -1;
    }

    /// <summary>Images per batch, 1..N.</summary>
    public int BatchSize { get; }
    /// <summary>Whether each drawn image is mirrored left-right with probability ½.</summary>
    public bool RandomFlip { get; }

    /// <summary>Whole batches per epoch, ⌊N / BatchSize⌋.</summary>
    public int BatchesPerEpoch => _data.Count / BatchSize;

    /// <summary>Index of the epoch the last batch came from; −1 before the first.</summary>
    public int Epoch { get; private set; }

    /// <summary>Draws the next batch into caller buffers.</summary>
    /// <param name="images">(B, C, H, W).</param>
    /// <param name="labels">B labels, or empty when the caller does not want them (required empty for an unlabelled dataset).</param>
    /// <param name="indices">B dataset indices drawn, or empty.</param>
    public void Next(Span<float> images, Span<int> labels = default, Span<int> indices = default)
    {
        int len = _data.ImageLength, w = _data.Width;
        if (images.Length != BatchSize * len)
            throw new ArgumentException($"images buffer must hold (B, C, H, W) = ({BatchSize}, {_data.Channels}, {_data.Height}, {w}) = {BatchSize * len} floats, got {images.Length}");
        if (labels.Length != 0 && (labels.Length != BatchSize || _data.Labels is null))
            throw new ArgumentException(_data.Labels is null ? "dataset has no labels; pass an empty labels span" : $"labels buffer must hold {BatchSize}, got {labels.Length}");
        if (indices.Length != 0 && indices.Length != BatchSize)
            throw new ArgumentException($"indices buffer must hold {BatchSize}, got {indices.Length}");

        if (_next + BatchSize > _order.Length) Shuffle();
        for (int b = 0; b < BatchSize; b++)
        {
            int idx = _order[_next++];
            var src = _data.Image(idx);
            var dst = images.Slice(b * len, len);
            if (RandomFlip && _rng.NextInt(2) == 1)
            {
                for (int row = 0; row < len; row += w)              // every (c, y) row reversed
                    for (int x = 0; x < w; x++)
                        dst[row + x] = src[row + w - 1 - x];
            }
            else src.CopyTo(dst);
            if (labels.Length != 0) labels[b] = _data.Labels![idx];
            if (indices.Length != 0) indices[b] = idx;
        }
    }

    /// <summary>Draws the next batch into new arrays: images (B, C, H, W), labels B or null.</summary>
    public (float[] Images, int[]? Labels) Next()
    {
        var images = new float[BatchSize * _data.ImageLength];
        var labels = _data.Labels is null ? null : new int[BatchSize];
        Next(images, labels);
        return (images, labels);
    }

    void Shuffle()
    {
        for (int i = 0; i < _order.Length; i++) _order[i] = i;
        for (int i = _order.Length - 1; i > 0; i--)                 // Fisher–Yates
        {
            int j = _rng.NextInt(i + 1);
            (_order[i], _order[j]) = (_order[j], _order[i]);
        }
        _next = 0;
        Epoch++;
    }
}

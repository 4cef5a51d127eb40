// Shuffled training batches (Data.Batches) driven by the engine's seeded Rng, with a checkpointable position.
// Batches keeps its permutation private, so the position is saved as (RNG state at the start of the current
// epoch, batches drawn in it): restoring re-creates the epoch's shuffle from that state and replays the batches
// already drawn, which reproduces the permutation, the flips and the RNG state exactly.
using DiffuSharp.Data;

namespace DiffuSharp.Training;

/// <summary><see cref="IIndexRng"/> over the engine's <see cref="Rng"/> (Lemire's bounded draw inside Rng.NextInt).</summary>
public sealed class RngIndexSource(Rng rng) : IIndexRng
{
    /// <summary>The generator every shuffle and flip is drawn from.</summary>
    public Rng Rng { get; } = rng ?? throw new ArgumentNullException(nameof(rng));
    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>) from <see cref="Rng"/>.</summary>
    public int NextInt(int maxExclusive) => Rng.NextInt(maxExclusive);
}

/// <summary>Where a <see cref="DataLoader"/> is: the RNG state when the current epoch was shuffled, the batches drawn
/// since, and their size (0: unknown, taken as the loader's own).</summary>
public sealed record DataLoaderState(RngState EpochStart, int BatchesInEpoch, int Epoch, int BatchSize = 0);

/// <summary>Shuffled training batches (<see cref="Batches"/>) driven by a seeded <see cref="Rng"/>, with a position
/// that can be saved and restored exactly (the epoch's start state and the batches drawn since).</summary>
public sealed class DataLoader
{
    readonly ImageDataset _data;
    readonly bool _randomFlip;
    readonly RngIndexSource _source;
    Batches _batches;
    RngState _epochStart;
    int _batchesInEpoch, _epochOffset;

    /// <summary>Batches of <paramref name="batchSize"/> from <paramref name="data"/>, shuffled by
    /// <paramref name="rng"/> (its draws continue the generator's stream), optionally flipped left-right with probability ½.</summary>
    public DataLoader(ImageDataset data, int batchSize, Rng rng, bool randomFlip = false)
    {
        _data = data ?? throw new ArgumentNullException(nameof(data));
        _randomFlip = randomFlip;
        _source = new RngIndexSource(rng);
        _batches = new Batches(data, batchSize, _source, randomFlip);
        _epochStart = rng.GetState();
    }

    /// <summary>The dataset batches are drawn from.</summary>
    public ImageDataset Data => _data;
    /// <summary>Images per batch.</summary>
    public int BatchSize => _batches.BatchSize;
    /// <summary>The epoch the last batch came from (−1 before the first), counted across restores.</summary>
    public int Epoch => _batches.Epoch + _epochOffset;

    /// <summary>Next batch into images (B, C, H, W) and, when not empty, labels (B).</summary>
    public void Next(Span<float> images, Span<int> labels)
    {
        var before = _source.Rng.GetState();
        int epoch = _batches.Epoch;
        _batches.Next(images, labels);
        if (_batches.Epoch != epoch) { _epochStart = before; _batchesInEpoch = 1; }
        else _batchesInEpoch++;
    }

    /// <summary>The current position, for checkpoints (restore it with SetState).</summary>
    public DataLoaderState GetState() => new(_epochStart, _batchesInEpoch, Epoch, BatchSize);

    /// <summary>Rewinds to a saved position: re-shuffles from the epoch's start state and replays its batches. A
    /// state saved with another batch size (a distributed run resumed on a different number of ranks) continues
    /// the same epoch's shuffle at the first whole batch of this size not before the images already drawn.</summary>
    public void SetState(DataLoaderState state)
    {
        if (state.BatchSize < 0) throw new InvalidDataException($"data loader state: negative batch size {state.BatchSize}");
        if (state.BatchSize > 0 && state.BatchSize != BatchSize)
        {
            long drawn = (long)state.BatchesInEpoch * state.BatchSize;
            if (drawn < 0 || drawn > _data.Count) throw new InvalidDataException($"data loader state: {state.BatchesInEpoch} batches of {state.BatchSize} exceed the data set ({_data.Count} images)");
            state = state with { BatchesInEpoch = (int)Math.Min(_batches.BatchesPerEpoch, (drawn + BatchSize - 1) / BatchSize), BatchSize = BatchSize };
        }
        if (state.BatchesInEpoch < 0 || state.BatchesInEpoch > _batches.BatchesPerEpoch)
            throw new InvalidDataException($"data loader state: {state.BatchesInEpoch} batches into an epoch of {_batches.BatchesPerEpoch}");
        _source.Rng.SetState(state.EpochStart);
        _batches = new Batches(_data, _batches.BatchSize, _source, _randomFlip);
        _epochStart = state.EpochStart;
        _batchesInEpoch = 0;
        var scratch = new float[_batches.BatchSize * _data.ImageLength];
        for (int i = 0; i < state.BatchesInEpoch; i++) Next(scratch, default);
        _epochOffset = state.BatchesInEpoch == 0 ? state.Epoch + 1 : state.Epoch - _batches.Epoch;
    }
}

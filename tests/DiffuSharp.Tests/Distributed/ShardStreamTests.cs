// The pieces that let ranks share one set of random streams without MPI: skipping k normal draws leaves an Rng
// exactly where k NextNormal() calls (the reference) leave it, whatever the cached spare; a data-loader position
// saved at one global batch size resumes at another in the same shuffle, at the first whole batch that repeats
// no image (checked against the permutation read one image at a time).
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Distributed;

public sealed class ShardStreamTests
{
    [Theory]
    [InlineData(0, false), InlineData(1, false), InlineData(2, false), InlineData(7, false), InlineData(784, false)]
    [InlineData(0, true), InlineData(1, true), InlineData(2, true), InlineData(7, true), InlineData(785, true)]
    public void Skipping_normals_matches_drawing_them(int k, bool startWithSpare)
    {
        var drawn = new Rng(42);
        if (startWithSpare) drawn.NextNormal();                       // leaves the pair's second value cached
        var skipped = new Rng(1);
        skipped.SetState(drawn.GetState());
        for (int i = 0; i < k; i++) drawn.NextNormal();
        Trainer.SkipNormals(skipped, k);
        Assert.Equal(drawn.GetState(), skipped.GetState());
        Assert.Equal(drawn.NextNormal(), skipped.NextNormal());
    }

    [Theory]
    [InlineData(6, 3, 4)]     // 18 images drawn at 6 per batch; at 4 per batch continue after 5 batches (20 images)
    [InlineData(4, 2, 8)]     // 8 drawn; at 8 per batch, exactly one batch
    [InlineData(8, 1, 3)]     // 8 drawn; at 3 per batch, 3 batches (9 images)
    public void A_position_saved_at_one_batch_size_resumes_at_another(int savedBatch, int batchesDrawn, int newBatch)
    {
        var data = TrainingFixtures.Synthetic(count: 40);
        int len = data.ImageLength;
        var order = new DataLoader(data, 1, new Rng(9));              // the epoch's permutation, one image at a time
        var perm = new float[40 * len];
        for (int i = 0; i < 40; i++) order.Next(perm.AsSpan(i * len, len), default);

        var saved = new DataLoader(data, savedBatch, new Rng(9));
        var scratch = new float[savedBatch * len];
        for (int i = 0; i < batchesDrawn; i++) saved.Next(scratch, default);
        var state = saved.GetState();
        Assert.Equal(savedBatch, state.BatchSize);

        var resumed = new DataLoader(data, newBatch, new Rng(123));
        resumed.SetState(state);
        var next = new float[newBatch * len];
        resumed.Next(next, default);
        int drawn = savedBatch * batchesDrawn, skipTo = (drawn + newBatch - 1) / newBatch * newBatch;
        Assert.Equal(perm.AsSpan(skipTo * len, newBatch * len).ToArray(), next);
    }
}

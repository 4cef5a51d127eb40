// Trains FashionClassifier with the library's own AdamW on a labelled ImageDataset: shuffled minibatches with random
// horizontal flips (Batches), cross-entropy, a linear learning-rate decay to zero over the run, and the test
// accuracy after every epoch. All randomness (initialisation, order, flips) comes from one seed.
using System.Diagnostics;
using DiffuSharp.Data;
using DiffuSharp.Training;

namespace DiffuSharp.Evaluation;

/// <summary>How <see cref="ClassifierTraining.Train"/> trains the classifier (AdamW, cross-entropy, linear
/// learning-rate decay to 0).</summary>
/// <param name="Epochs">passes over the training set</param>
/// <param name="BatchSize">images per step, 1..N</param>
/// <param name="Lr">the peak learning rate, decayed linearly to 0 over the run</param>
/// <param name="WeightDecay">AdamW's decoupled weight decay</param>
/// <param name="RandomFlip">mirror each image left-right with probability ½ (garments are nearly symmetric, so this is
/// free data)</param>
/// <param name="Seed">seeds initialisation, batch order and flips</param>
public sealed record ClassifierTrainConfig(
    int Epochs = 6,
    int BatchSize = 64,
    double Lr = 2e-3,              // peak rate; decays linearly to 0 over the run
    double WeightDecay = 1e-4,
    bool RandomFlip = true,        // garments are left-right symmetric enough that mirroring is free data
    ulong Seed = 0);

/// <summary>One epoch's numbers: mean training loss and accuracy, test accuracy (NaN without a test set).</summary>
public sealed record ClassifierEpoch(int Epoch, double TrainLoss, double TrainAccuracy, double TestAccuracy, double Seconds);

/// <summary>Trains <see cref="FashionClassifier"/> with DiffuSharp's own AdamW on a labelled
/// <see cref="ImageDataset"/>, reporting test accuracy after every epoch; every random choice follows from one
/// seed.</summary>
public static class ClassifierTraining
{
    /// <summary>A fresh classifier trained on train; test (optional) is scored after each epoch.</summary>
    public static FashionClassifier Train(ImageDataset train, ImageDataset? test, ClassifierTrainConfig config, Action<ClassifierEpoch>? onEpoch = null,
        Action<int, double>? onStep = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.Labels is null) throw new ArgumentException("the classifier needs a labelled training set");
        if (train.Height != train.Width) throw new ArgumentException($"the classifier needs square images, got {train.Height}×{train.Width}");
        if (config.Epochs < 1 || config.BatchSize < 1 || config.BatchSize > train.Count)
            throw new ArgumentException($"epochs must be ≥ 1 and batch size in 1..{train.Count}");
        var root = new Rng(config.Seed);
        var model = new FashionClassifier(new ClassifierConfig(ImageSize: train.Height, InChannels: train.Channels,
            NumClasses: Math.Max(2, train.NumClasses)), root.Fork());
        var flat = model.PackParameters();
        var flatParam = Tensor.Wrap(flat.Values, flat.Values.Length);
        flatParam.Grad = Tensor.Wrap(flat.Grads, flat.Grads.Length);
        var opt = new AdamW([flatParam], new AdamWConfig(Lr: config.Lr, WeightDecay: config.WeightDecay));
        var batches = new Batches(train, config.BatchSize, new SplitMix64(root.NextUInt64()), config.RandomFlip);

        int B = config.BatchSize, c = train.Channels, s = train.Height;
        long total = (long)config.Epochs * batches.BatchesPerEpoch, step = 0;
        var images = new float[B * train.ImageLength];
        var labels = new int[B];
        for (int epoch = 0; epoch < config.Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            model.Train();
            double lossSum = 0;
            int correct = 0, seen = 0;
            for (int i = 0; i < batches.BatchesPerEpoch; i++, step++)
            {
                using var scope = TensorScope.Begin();               // the step's activations go back to the pool
                batches.Next(images, labels);
                model.ZeroGrad();
                var (logits, _) = model.Forward(Tensor.FromArray(images, B, c, s, s));
                var loss = FashionClassifier.CrossEntropy(logits, labels);
                loss.Backward();
                opt.Lr = config.Lr * (1 - (double)step / total);
                opt.Step();
                double l = loss.Item();
                lossSum += l * B;
                correct += CountCorrect(logits.ToArray(), labels, logits.Dim(1));
                seen += B;
                onStep?.Invoke((int)step + 1, l);
            }
            model.ZeroGrad();
            double testAcc = test is null ? double.NaN : Accuracy(model, test);
            onEpoch?.Invoke(new ClassifierEpoch(epoch + 1, lossSum / seen, (double)correct / seen, testAcc, clock.Elapsed.TotalSeconds));
        }
        model.Eval();
        return model;
    }

    /// <summary>Fraction of the first <paramref name="limit"/> (0 = all) labelled images that the classifier gets right.</summary>
    public static double Accuracy(FashionClassifier model, ImageDataset data, int limit = 0)
    {
        if (data.Labels is null) throw new ArgumentException("accuracy needs a labelled dataset");
        int n = limit > 0 ? Math.Min(limit, data.Count) : data.Count;
        var (preds, _) = model.Predict(data.Images.AsSpan(0, n * data.ImageLength), n);
        int correct = 0;
        for (int i = 0; i < n; i++) if (preds[i] == data.Labels[i]) correct++;
        return (double)correct / n;
    }

    static int CountCorrect(float[] logits, int[] labels, int k)
    {
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int best = 0;
            for (int j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
            if (best == labels[i]) correct++;
        }
        return correct;
    }
}

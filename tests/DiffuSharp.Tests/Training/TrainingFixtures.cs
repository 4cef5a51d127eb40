// Tiny models and synthetic data shared by the training and CLI tests: 8×8 gray images, a 32-channel UNet with
// channel_mult 1,2 and one res block per level, 50 diffusion steps, so a training step takes milliseconds.
using DiffuSharp.Data;
using DiffuSharp.Models;

namespace DiffuSharp.Tests.Training;

internal static class TrainingFixtures
{
    // T ≥ 50: improved-diffusion's linear schedule scaled to T has β_T = 0.02·1000/T, which reaches 1 (ᾱ_T = 0) at T = 20.
    public static ModelConfig TinyModel(bool learnSigma = false, double dropout = 0, bool classCond = false) => new()
    {
        ImageSize = 8, NumChannels = 32, NumResBlocks = 1, NumHeads = 1, AttentionResolutions = "", ChannelMult = "1,2",
        DiffusionSteps = 50, InChannels = 1, LearnSigma = learnSigma, Dropout = dropout,
        ClassCond = classCond, NumClasses = classCond ? 4 : null,
    };

    /// <summary>count smooth random 1×size×size images in [-1, 1], labelled i % 4.</summary>
    public static ImageDataset Synthetic(int count = 16, int size = 8, ulong seed = 7)
    {
        var rng = new Rng(seed);
        var images = new float[count * size * size];
        for (int n = 0; n < count; n++)
        {
            double fx = rng.NextDouble() * 3, fy = rng.NextDouble() * 3, ph = rng.NextDouble() * 6;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    images[(n * size + y) * size + x] = (float)Math.Sin(fx * x / size * 6 + fy * y / size * 6 + ph);
        }
        var labels = Enumerable.Range(0, count).Select(i => i % 4).ToArray();
        return new ImageDataset(images, count, 1, size, size, labels, 4);
    }

    public static string TempFolder(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"diffusharp-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }
}

// A tiny randomly-initialised model folder for command-line tests: 8×8 gray, 32 channels, channel_mult 1,2,
// T = 50. Every weight (the zero-initialised output convs too) is drawn small and random, so the network's
// output depends on its input and the commands' results are not trivially zero.
using DiffuSharp.Imaging;
using DiffuSharp.Models;
using DiffuSharp.NN;
using DiffuSharp.Tests.Training;

namespace DiffuSharp.Tests.Cli;

internal static class CliModelFixture
{
    public static string TinyModelFolder(string dir, bool classCond = false, int imageSize = 8, ulong seed = 11, int numClasses = 4)
    {
        var config = TrainingFixtures.TinyModel(classCond: classCond) with { ImageSize = imageSize, NumClasses = classCond ? numClasses : null };
        var model = new UNetModel(config.ToUNetConfig(), new Rng(seed));
        var rng = new Rng(seed + 1);
        foreach (var (_, p) in model.NamedParameters())
        {
            var noise = new float[p.Count];
            rng.FillNormal(noise, 0f, 0.05f);
            var d = p.Data;
            for (int i = 0; i < d.Length; i++) d[i] += noise[i];
        }
        string folder = Path.Combine(dir, classCond ? "model-cc" : "model");
        ModelFolder.Save(folder, config, ModelFolder.Weights(model));
        return folder;
    }

    /// <summary>A smooth gray test image of the given size (a blob and a gradient), written as PNG.</summary>
    public static string PngFile(string dir, string name, int size = 8, int channels = 1, double phase = 0)
    {
        var px = new byte[size * size * channels];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                for (int c = 0; c < channels; c++)
                    px[(y * size + x) * channels + c] = (byte)(127.5 + 120 * Math.Sin(0.7 * x + 0.4 * y + phase + c));
        string path = Path.Combine(dir, name);
        DiffuSharp.Imaging.Png.Write(path, new Image8(size, size, channels, px));
        return path;
    }
}

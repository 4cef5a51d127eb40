// train-controlnet's samples/step_N.png: eight held-out images (the first eight Fashion-MNIST test images; the first
// eight training images when the test files are absent) in three rows: the image padded to the VAE's size, its
// control image, and the pipeline's output for "a photo of a {its class}" with the ControlNet's EMA weights (20 steps
// of the pipeline's scheduler, guidance 3, seed 1), so one sees at a glance whether the outputs follow the control.
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.Pipelines;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

internal static class ControlNetSampleGrid
{
    const int Columns = 8;

    public static void Write(ControlNetTrainer trainer, StableDiffusionPipeline pipe, string outFolder, ImageDataset images)
    {
        int size = pipe.Vae.Config.SampleSize, pad = (size - images.Height) / 2, count = Math.Min(Columns, images.Count);
        var shown = new ImageDataset(images.Images.AsSpan(0, count * images.ImageLength).ToArray(), count, 1, images.Height, images.Width,
            images.Labels?.AsSpan(0, count).ToArray(), images.NumClasses);
        var control = ControlImages.Compute(shown, pad, trainer.Condition);
        var padded = ImagePadding.Pad(shown, pad);
        var net = trainer.EmaNet();
        var cells = new float[3 * count * size * size];
        int len = size * size;
        padded.Images.AsSpan(0, count * len).CopyTo(cells);
        for (int i = 0; i < count * len; i++) cells[count * len + i] = 2 * control.Masks[i] - 1;
        using (Tensor.NoGrad())
            for (int i = 0; i < count; i++)
            {
                using var scope = TensorScope.Begin();
                string prompt = shown.Labels is { } labels ? "a photo of " + FashionCaptions.WithArticle(FashionCaptions.ClassNames[labels[i]]) : "";
                var request = new Txt2ImgRequest(prompt, GuidanceScale: 3, Steps: 20, Width: size, Height: size,
                    Control: [new ControlNetInput(net, control.Batch([i]))]);
                var image = pipe.Txt2Img(request, new Rng(1)).Image.ToArray();        // (1, C, size, size) in [0, 1]
                for (int k = 0; k < len; k++) cells[(2 * count + i) * len + k] = 2 * image[k] - 1;
            }
        string dir = Path.Combine(outFolder, "samples");
        Directory.CreateDirectory(dir);
        Png.Write(Path.Combine(dir, $"step_{trainer.StepCount:D7}.png"), ImageGrid.Make(cells, 3 * count, 1, size, size, columns: count));
    }

    /// <summary>The images the grid shows: the test set's first eight, or the training set's.</summary>
    public static ImageDataset Images(string dataFolder, ImageDataset train)
    {
        try { return FashionMnist.Load(dataFolder, train: false); }
        catch (Exception e) when (e is DatasetNotFoundException or FileNotFoundException or DirectoryNotFoundException) { return train; }
    }
}

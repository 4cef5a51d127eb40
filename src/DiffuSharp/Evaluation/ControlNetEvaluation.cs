// The ControlNet benchmark: for each of the first N images of a set (Fashion-MNIST's test images), the prompt "a photo
// of a {class}" is sampled from the same seed without control, with each ControlNet alone and with all of them at
// once; each output (gray, [0, 1]) is scored against the image's control images, computed exactly as in training
// (ControlImages: Canny edges and the filled silhouette of the padded image): edges by pixel-exact F1 of the output's
// Canny edges, silhouette by IoU of the output's filled mask (ControlMetrics). Scores are means over the images.
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Training;

namespace DiffuSharp.Evaluation;

/// <summary>One way of sampling (which ControlNets steer it) and its mean scores: edge F1 and silhouette IoU, each
/// present when that condition is evaluated.</summary>
/// <param name="Run">"none", a condition's name (that net alone) or "all"</param>
/// <param name="Count">how many images the means are over</param>
/// <param name="EdgeF1">mean F1 of the outputs' Canny edges against the edge control images, in [0, 1]</param>
/// <param name="SilhouetteIou">mean IoU of the outputs' filled masks against the silhouette control images, in [0, 1]</param>
public sealed record ControlRunScore(string Run, int Count, double? EdgeF1, double? SilhouetteIou);

/// <summary>How each image of the ControlNet benchmark is sampled.</summary>
/// <param name="Steps">denoising steps of the pipeline's scheduler</param>
/// <param name="Guidance">classifier-free guidance scale (≤ 1: off)</param>
/// <param name="Scale">controlnet_conditioning_scale of every net</param>
/// <param name="Seed">image i is sampled from seed Seed + i, the same in every run</param>
public sealed record ControlNetEvalSettings(int Steps = 25, double Guidance = 3, double Scale = 1, ulong Seed = 0);

/// <summary>The ControlNet benchmark (<c>diffusharp eval-controlnet</c>): how well sampled images obey their control
/// images, with and without the nets (see the file header).</summary>
public static class ControlNetEvaluation
{
    /// <summary>Scores the runs "none", each net alone and (with more than one) "all". <paramref name="images"/>: 1×H×W
    /// in [−1, 1] with labels, padded evenly to the VAE's size.</summary>
    public static IReadOnlyList<ControlRunScore> Evaluate(StableDiffusionPipeline pipe, IReadOnlyList<(ControlCondition Condition, ControlNetModel Net)> nets,
        ImageDataset images, ControlNetEvalSettings settings, Action<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (nets.Count == 0) throw new ArgumentException("ControlNetEvaluation: no ControlNet to evaluate");
        if (nets.Select(n => n.Condition).Distinct().Count() != nets.Count) throw new ArgumentException("ControlNetEvaluation: one ControlNet per condition");
        if (images.Labels is null) throw new ArgumentException("ControlNetEvaluation: the images need labels (the prompt names the class)");
        int size = pipe.Vae.Config.SampleSize, pad = (size - images.Height) / 2;
        if (pad < 0 || images.Height + 2 * pad != size || images.Width != images.Height)
            throw new ArgumentException($"ControlNetEvaluation: {images.Height}×{images.Width} images cannot be padded evenly to the VAE's {size}×{size}");
        var conditions = nets.Select(n => n.Condition).ToArray();
        var controls = conditions.ToDictionary(c => c, c => ControlImages.Compute(images, pad, c));
        var runs = new List<(string Name, int[] Nets)> { ("none", []) };
        for (int k = 0; k < nets.Count; k++) runs.Add((ControlImages.Name(nets[k].Condition), [k]));
        if (nets.Count > 1) runs.Add(("all", [.. Enumerable.Range(0, nets.Count)]));
        var f1 = new double[runs.Count];
        var iou = new double[runs.Count];
        int len = size * size;
        using var _ = Tensor.NoGrad();
        for (int i = 0; i < images.Count; i++)
        {
            string prompt = "a photo of " + FashionCaptions.WithArticle(FashionCaptions.ClassNames[images.Labels[i]]);
            for (int r = 0; r < runs.Count; r++)
            {
                using var scope = TensorScope.Begin();
                var control = runs[r].Nets.Select(k => new ControlNetInput(nets[k].Net, controls[nets[k].Condition].Batch([i]), settings.Scale)).ToList();
                var request = new Txt2ImgRequest(prompt, GuidanceScale: settings.Guidance, Steps: settings.Steps, Width: size, Height: size, Control: control);
                var gray = Gray(pipe.Txt2Img(request, new Rng(settings.Seed + (ulong)i)).Image.ToArray(), len);
                foreach (var c in conditions)
                {
                    var target = controls[c].Masks.AsSpan(i * len, len).ToArray().Select(v => v > 0.5f).ToArray();
                    var mask = ControlImages.Mask(c, gray, size);
                    if (c == ControlCondition.Edges) f1[r] += ControlMetrics.EdgeF1(mask, target);
                    else iou[r] += ControlMetrics.Iou(mask, target);
                }
            }
            progress?.Invoke(i + 1);
        }
        bool edges = conditions.Contains(ControlCondition.Edges), silhouette = conditions.Contains(ControlCondition.Silhouette);
        return runs.Select((run, r) => new ControlRunScore(run.Name, images.Count, edges ? f1[r] / images.Count : null, silhouette ? iou[r] / images.Count : null)).ToList();
    }

    /// <summary>(1, C, H, W) in [0, 1] → H·W gray values (the mean of the channels).</summary>
    static float[] Gray(float[] image, int len)
    {
        int channels = image.Length / len;
        var g = new float[len];
        for (int c = 0; c < channels; c++)
            for (int k = 0; k < len; k++) g[k] += image[c * len + k] / channels;
        return g;
    }
}

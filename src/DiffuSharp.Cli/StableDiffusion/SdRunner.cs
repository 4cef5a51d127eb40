// One Stable Diffusion command run end to end, for txt2img, img2img and inpaint alike: parse and check the options
// (SdOptions), read the input images, load the pipeline and any ControlNets, run the library call with a progress bar
// (ProgressBar) and optional previews, then write the PNG (a grid for --n > 1) with sd-webui's "parameters" tEXt
// chunk and the optional .npy, each atomically.
using System.Diagnostics;
using System.Globalization;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;

namespace DiffuSharp.Cli.StableDiffusion;

public static class SdRunner
{
    public static int Run(SdMode mode, string command, string usage, string summary, string[] args, TextWriter stdout, TextWriter stderr)
    {
        var specs = SdOptions.Specs(mode);
        var (rest, repeated) = SdOptions.TakeRepeated(command, args, specs);
        var parsed = OptionParser.Parse(command, rest, specs);
        if (parsed.Flag("help"))
        {
            stdout.WriteLine(OptionParser.Help(usage, summary, specs));
            return 0;
        }
        var o = SdOptions.Parse(mode, command, parsed, repeated);

        // inputs that need no model: the image and the mask
        Tensor? image = o.ImagePath is null ? null : o.ReadImage("image", o.ImagePath, signed: true);
        if (image is not null) o.Size(image, 0, 0);
        Tensor? mask = o.MaskPath is null ? null : o.ReadMask(o.MaskPath);
        if (mask is not null && (mask.Dim(3) != image!.Dim(3) || mask.Dim(2) != image.Dim(2)))
            throw new CliException($"{command}: --mask {o.MaskPath} is {mask.Dim(3)}x{mask.Dim(2)}, the --image is {image.Dim(3)}x{image.Dim(2)}: give a mask of the image's size (it is not resized)");

        // the models
        var source = o.OpenSource();
        var pipe = StableDiffusionPipeline.Load(source, o.Sampler, o.Karras);
        if (o.VaeTiling) pipe = pipe.WithVaeTiling(VaeTiling.For(pipe.Vae.Config));
        int f = pipe.VaeScaleFactor;
        var (w, h) = o.Size(image, pipe.UNet.Config.SampleSize * f, pipe.UNet.Config.SampleSize * f);
        if (mode == SdMode.Inpaint && pipe.UNet.Config.InChannels is not (4 or 9))
            throw new CliException($"{command}: inpainting needs a UNet with 4 (latent blending) or 9 (inpainting UNet) input channels; {o.Model}'s has {pipe.UNet.Config.InChannels}");
        if (mode != SdMode.Inpaint && pipe.UNet.Config.InChannels != pipe.Vae.Config.LatentChannels)
            throw new CliException($"{command}: {o.Model}'s UNet takes {pipe.UNet.Config.InChannels} input channels (an inpainting UNet?); {command} needs {pipe.Vae.Config.LatentChannels}: use inpaint");
        var control = o.LoadControl(source, w, h);
        var latents = o.ReadLatents([o.N, pipe.Vae.Config.LatentChannels, h / f, w / f], w, h);
        int total = pipe.LoopLength(o.Steps, o.Strength);
        if (total == 0) throw new CliException($"{command}: --strength {o.Strength.ToString(CultureInfo.InvariantCulture)} of {o.Steps} steps leaves no step to run (int(steps × strength) = 0)");

        // the run
        var rng = new Rng(unchecked((ulong)o.Seed));
        var preview = o.Preview is null ? null : new SdPreview(o.Preview, o.PreviewEvery, o.PreviewMode == "vae", pipe, total, w, h);
        var clock = Stopwatch.StartNew();
        PipelineOutput result;
        using (var progress = ProgressBar.Start(command, total))
        {
            PipelineStepCallback step = (i, _, _) => progress.Set(i + 1);
            PipelinePreviewCallback? show = preview is null ? null : preview.Show;
            result = mode switch
            {
                SdMode.Txt2Img => pipe.Txt2Img(new Txt2ImgRequest(o.Prompt, o.Negative, o.Guidance, o.Steps, w, h, o.N, latents, control), rng, step, preview: show),
                SdMode.Img2Img => pipe.Img2Img(new Img2ImgRequest(o.Prompt, image!, o.Strength, o.Negative, o.Guidance, o.Steps, o.N, Noise: latents, Control: control),
                    rng, step, preview: show),
                _ => pipe.Inpaint(new InpaintRequest(o.Prompt, image!, mask!, o.Strength, o.Negative, o.Guidance, o.Steps, o.N, Control: control, Noise: latents),
                    rng, step, preview: show),
            };
        }
        foreach (var warning in result.Warnings) stderr.WriteLine($"warning: {Program.Printable(warning)}");

        // the outputs
        var signed = Array.ConvertAll(result.Image.Contiguous().ToArray(), v => v * 2f - 1f);   // (N, C, H, W) in [-1, 1]
        int channels = result.Image.Dim(1);                                                      // 3, or 1 for a gray VAE
        string sampler = SamplerDisplayName(pipe.Scheduler.Config);
        string parameters = Parameters(o, sampler, w, h);
        ImageFile.Write(o.Out, ImageGrid.Make(signed, o.N, channels, h, w, padding: o.N == 1 ? 0 : 2), text: [("parameters", parameters)]);   // a PNG keeps the parameters
        if (o.SaveNpy is { } npy) Npy.WriteFloat32(npy, [o.N, channels, h, w], signed);
        stdout.WriteLine($"wrote {o.Out}: {o.N} image(s) {w}x{h}, {o.Steps} steps of {sampler} ({total} model calls), {clock.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>sd-webui's generation parameters: the prompt, "Negative prompt: …" when there is one, then the settings
    /// line (img2img and inpaint add "Denoising strength", each ControlNet a quoted "ControlNet k" entry as sd-webui's
    /// ControlNet extension writes it).</summary>
    public static string Parameters(SdOptions o, string sampler, int width, int height)
    {
        var inv = CultureInfo.InvariantCulture;
        var settings = new List<string>
        {
            $"Steps: {o.Steps}", $"Sampler: {sampler}", $"CFG scale: {o.Guidance.ToString(inv)}", $"Seed: {o.Seed.ToString(inv)}",
            $"Size: {width}x{height}", $"Model: {o.ModelName}",
        };
        if (o.Mode != SdMode.Txt2Img) settings.Add($"Denoising strength: {o.Strength.ToString(inv)}");
        for (int k = 0; k < o.Control.Count; k++)
        {
            var c = o.Control[k];
            string name = c.Folder is null ? $"{o.ModelName}/controlnet" : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(c.Folder)));
            settings.Add($"ControlNet {k}: \"Module: none, Model: {name}, Weight: {c.Scale.ToString(inv)}, Resize Mode: Just Resize, " +
                $"Guidance Start: {c.Start.ToString(inv)}, Guidance End: {c.End.ToString(inv)}, Pixel Perfect: False, Control Mode: Balanced\"");
        }
        string line = string.Join(", ", settings);
        return string.IsNullOrEmpty(o.Negative) ? $"{o.Prompt}\n{line}" : $"{o.Prompt}\nNegative prompt: {o.Negative}\n{line}";
    }

    /// <summary>The sd-webui name of a scheduler config ("DPM++ 2M Karras", "PLMS"); the class name when none matches.</summary>
    public static string SamplerDisplayName(SchedulerConfig c)
    {
        var match = SchedulerFactory.Samplers.Where(s => s.ClassName == c.ClassName).ToList();
        var best = match.FirstOrDefault(s => s.Adjust(c) == c) ?? match.FirstOrDefault();
        string name = best?.DisplayName ?? c.ClassName;
        return c.UseKarrasSigmas ? name + " Karras" : name;
    }
}

/// <summary>--preview: the predicted image every N steps and at the last, written atomically over the same PNG: the
/// cheap latent→RGB map enlarged to the output size (nearest), or a VAE decode.</summary>
sealed class SdPreview(string path, int every, bool vae, StableDiffusionPipeline pipe, int total, int width, int height)
{
    public int Written { get; private set; }

    public void Show(int step, double timestep, Tensor x0)
    {
        if ((step + 1) % every != 0 && step + 1 != total) return;
        int n = x0.Dim(0);
        var rgb = vae ? pipe.Decode(x0) : Enlarge(LatentPreview.CheapRgb(x0), width / x0.Dim(3), height / x0.Dim(2));   // (N, 3, H, W) in [0, 1]
        var signed = Array.ConvertAll(rgb.Contiguous().ToArray(), v => v * 2f - 1f);
        Png.Write(path, ImageGrid.Make(signed, n, 3, height, width, padding: n == 1 ? 0 : 2),
            text: [("parameters", $"preview after step {step + 1}/{total}")]);
        Written++;
    }

    static Tensor Enlarge(Tensor x, int fx, int fy)
    {
        int b = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        var src = x.Contiguous().ToArray();
        var dst = new float[b * c * h * fy * w * fx];
        for (int p = 0; p < b * c; p++)
            for (int y = 0; y < h * fy; y++)
                for (int xx = 0; xx < w * fx; xx++)
                    dst[(p * h * fy + y) * w * fx + xx] = src[(p * h + y / fy) * w + xx / fx];
        return Tensor.FromArray(dst, b, c, h * fy, w * fx);
    }
}

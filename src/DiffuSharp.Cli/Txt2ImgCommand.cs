// diffusharp txt2img: Stable Diffusion text-to-image from a diffusers pipeline folder (or a single-file .safetensors
// checkpoint read with --config DIR's configs) through Pipelines/StableDiffusionPipeline, with any ControlNets. Writes a
// PNG (a grid for --n > 1) whose tEXt chunk "parameters" holds sd-webui's generation-parameters text, so other tools
// read them back. --latents FILE gives x_T (.npy / .safetensors, float32 N×4×h×w), which makes the run a pure function
// of its inputs; --save-npy writes the decoded images as float32 N×3×H×W in [-1, 1]. Options: StableDiffusion/SdOptions.
using DiffuSharp.Cli.StableDiffusion;

namespace DiffuSharp.Cli;

public static class Txt2ImgCommand
{
    const string Summary = "Stable Diffusion text-to-image, step for step as diffusers' StableDiffusionPipeline (StableDiffusionControlNetPipeline with --control-image).";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        => SdRunner.Run(SdMode.Txt2Img, "txt2img", "txt2img [--model DIR] --prompt P --out FILE.png", Summary, args, stdout, stderr);
}

// diffusharp inpaint: Stable Diffusion inpainting (diffusers' StableDiffusionInpaintPipeline; with --control-image,
// StableDiffusionControlNetInpaintPipeline): repaints where the --mask is white. An ordinary (4-channel) UNet keeps the
// rest by latent blending after every step; a 9-channel inpainting UNet sees the mask and the masked image's latents.
// Options and outputs as txt2img's (StableDiffusion/SdOptions); --latents gives the noise instead of the seed's.
using DiffuSharp.Cli.StableDiffusion;

namespace DiffuSharp.Cli;

public static class InpaintCommand
{
    const string Summary = "Stable Diffusion inpainting, step for step as diffusers' StableDiffusionInpaintPipeline (4- and 9-channel UNets).";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        => SdRunner.Run(SdMode.Inpaint, "inpaint", "inpaint [--model DIR] --image FILE.png --mask FILE.png --prompt P --out FILE.png", Summary, args, stdout, stderr);
}

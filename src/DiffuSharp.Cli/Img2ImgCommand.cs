// diffusharp img2img: Stable Diffusion image-to-image (diffusers' StableDiffusionImg2ImgPipeline; with --control-image,
// StableDiffusionControlNetImg2ImgPipeline): the --image's latents noised to the first timestep that int(steps × strength)
// leaves, then denoised with the prompt. Options and outputs as txt2img's (StableDiffusion/SdOptions); --latents gives
// the noise mixed into the image latents instead of the seed's.
using DiffuSharp.Cli.StableDiffusion;

namespace DiffuSharp.Cli;

public static class Img2ImgCommand
{
    const string Summary = "Stable Diffusion image-to-image, step for step as diffusers' StableDiffusionImg2ImgPipeline.";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        => SdRunner.Run(SdMode.Img2Img, "img2img", "img2img [--model DIR] --image FILE.png --prompt P --out FILE.png", Summary, args, stdout, stderr);
}

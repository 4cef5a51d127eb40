// The diffusers components loaded from a single-file checkpoint through ComponentLoader's (config, tensor source)
// overloads: tiny_sd_single_file.safetensors (diffusers 0.27.2's convert_diffusers_to_original_stable_diffusion.py of
// Fixtures/diffusers/pipelines/tiny_sd) read with tiny_sd's configs gives a UNet and a VAE whose forward passes equal,
// bit for bit, those of the models loaded from tiny_sd's folders.
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using Xunit;

namespace DiffuSharp.Tests.Pipelines;

public sealed class SingleFileComponentTests
{
    static string Dir => Path.Combine(TestPaths.Diffusers, "pipelines");
    static string TinySd => Path.Combine(Dir, "tiny_sd");
    static string SingleFile => Path.Combine(Dir, "tiny_sd_single_file.safetensors");

    static SingleFilePipeline Pipeline() => SingleFilePipeline.Open(SingleFile, TinySd);

    [Fact]
    public void UNet_from_the_single_file_equals_the_folder_one_bit_for_bit()
    {
        var source = Pipeline();
        var fromFile = ComponentLoader.LoadUNet2DCondition(source.ConfigPath("unet"), source.Checkpoint.Component("unet"));
        var fromFolder = ComponentLoader.LoadUNet2DCondition(Path.Combine(TinySd, "unet"));
        var rng = new Rng(7);
        var sample = Tensor.RandN([2, 4, 8, 8], rng);                       // (B, latent C, H, W)
        var context = Tensor.RandN([2, 5, 16], rng);                        // (B, tokens, cross_attention_dim)
        var t = Tensor.FromArray([999f, 17f], 2);
        using var _ = Tensor.NoGrad();
        Assert.Equal(fromFolder.Forward(sample, t, context).ToArray(), fromFile.Forward(sample, t, context).ToArray());
    }

    [Fact]
    public void VAE_from_the_single_file_equals_the_folder_one_bit_for_bit()
    {
        var source = Pipeline();
        var fromFile = ComponentLoader.LoadAutoencoderKL(source.ConfigPath("vae"), source.Checkpoint.Component("vae"));
        var fromFolder = ComponentLoader.LoadAutoencoderKL(Path.Combine(TinySd, "vae"));
        var image = Tensor.Rand([1, 3, 32, 32], new Rng(8)) * 2f - 1f;     // (B, 3, H, W) in [-1, 1]
        using var _ = Tensor.NoGrad();
        Assert.Equal(fromFolder.Forward(image).ToArray(), fromFile.Forward(image).ToArray());
    }

    [Fact]
    public void A_component_the_file_lacks_is_an_error_naming_it()
    {
        var e = Assert.Throws<InvalidDataException>(() => Pipeline().Checkpoint.Component("controlnet"));
        Assert.Contains("controlnet", e.Message);
        Assert.Contains("tiny_sd_single_file.safetensors", e.Message);
    }
}

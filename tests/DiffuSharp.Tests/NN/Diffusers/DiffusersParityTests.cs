// Every diffusers model fixture (Fixtures/diffusers/NAME + NAME.io.safetensors, made by diffusers 0.27.2 on torch
// 1.13, see README.upstream.md) replays within 1e-4 relative L2 of diffusers' float32 output, every recorded output.
using DiffuSharp.NN.Diffusers;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.NN.Diffusers;

public sealed class DiffusersParityTests(ITestOutputHelper output)
{
    const double Tolerance = 1e-4;

    static string Io(string name) => Path.Combine(TestPaths.Diffusers, name + ".io.safetensors");

    void AssertReplays(IReadOnlyList<ReplayResult> results, int expectedOutputs)
    {
        foreach (var r in results) output.WriteLine($"{r.Output}: rel_err {r.RelErr:E3}, max_abs {r.MaxAbs:E3}");
        Assert.Equal(expectedOutputs, results.Count);
        foreach (var r in results)
            Assert.True(r.RelErr < Tolerance, $"{r.Output}: relative L2 error {r.RelErr:E3} (max abs {r.MaxAbs:E3}) exceeds {Tolerance:E0}");
    }

    [Fact]
    public void UNet2DCondition_sd1_layout_matches_diffusers() => AssertReplays(ComponentReplay.Run(Io("unet2d_condition")), 1);

    [Fact]
    public void UNet2DCondition_sd2_layout_linear_projection_per_level_heads_matches_diffusers()
        => AssertReplays(ComponentReplay.Run(Io("unet2d_condition_sd2like")), 1);

    [Fact]
    public void AutoencoderKL_encode_decode_forward_match_diffusers() => AssertReplays(ComponentReplay.Run(Io("autoencoder_kl")), 5);

    [Fact]
    public void ControlNet_residuals_and_the_unet_fed_with_them_match_diffusers()
        => AssertReplays(ComponentReplay.Run(Io("controlnet"), unetFolder: Path.Combine(TestPaths.Diffusers, "unet2d_condition")), 6);

    [Fact]
    public void UNet2DModel_matches_diffusers() => AssertReplays(ComponentReplay.Run(Io("unet2d")), 1);

    // Fixtures/diffusers_extra (make_diffusers_extra.py): the config keys the fixtures above leave at their defaults.
    static string Extra(string name) => Path.Combine(TestPaths.Fixtures, "diffusers_extra", name + ".io.safetensors");

    [Fact]
    public void UNet2DCondition_with_non_default_config_odd_size_and_class_labels_matches_diffusers()
        => AssertReplays(ComponentReplay.Run(Extra("unet2d_condition_variants")), 1);

    [Fact]
    public void ControlNet_guess_mode_matches_diffusers() => AssertReplays(ComponentReplay.Run(Extra("controlnet_guess_mode")), 5);

    [Fact]
    public void ControlNet_bgr_global_pool_heads_and_class_labels_match_diffusers() => AssertReplays(ComponentReplay.Run(Extra("controlnet_variants")), 7);

    [Fact]
    public void UNet2DModel_with_class_embeddings_and_scale_shift_matches_diffusers() => AssertReplays(ComponentReplay.Run(Extra("unet2d_variants")), 1);

    [Fact]
    public void AutoencoderKL_three_levels_gelu_odd_sizes_match_diffusers() => AssertReplays(ComponentReplay.Run(Extra("autoencoder_kl_variants")), 5);
}

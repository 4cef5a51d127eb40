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
}

// Named UNet2DModel configs for `train --unet-preset NAME`:
//   ddpm-fashion-mnist  28×28 gray (Fashion-MNIST at its own size, no padding): channels 32, 64, 64, two resnets per
//                       level, 28 → 14 → 7 with attention at 7×7 (the levels and attention resolution of the shipped
//                       pixel model), 8 GroupNorm groups (4 channels each; 32 groups would leave one), 2 heads of 32.
//                       1.6 M parameters: about 1 step per second at batch 32 on two CPU cores.
//   ddpm-tiny           28×28 gray, channels 16, 32, one resnet per level, attention at 14×14: for tests and trials.
//   ddpm-anime-64       the UNet of diffusers' train_unconditional.py (and of the DDPM tutorial it comes with):
//                       64×64 RGB, channels 128, 128, 256, 256, 512, 512, attention at 4×4 on the way down and up.
namespace DiffuSharp.NN.Diffusers;

/// <summary>Named UNet2DModel configs for <c>train --unet-preset NAME</c>: "ddpm-fashion-mnist" (28×28 gray, 1.6 M
/// parameters), "ddpm-tiny" (for tests and trials) and "ddpm-anime-64" (the 64×64 RGB UNet of diffusers'
/// train_unconditional.py).</summary>
public static class UNet2DPresets
{
    static readonly (string Name, UNet2DConfig Config)[] All =
    [
        ("ddpm-fashion-mnist", new UNet2DConfig
        {
            SampleSize = 28, InChannels = 1, OutChannels = 1, BlockOutChannels = [32, 64, 64], LayersPerBlock = 2,
            DownBlockTypes = [DownBlockType.DownBlock2D, DownBlockType.DownBlock2D, DownBlockType.AttnDownBlock2D],
            UpBlockTypes = [UpBlockType.AttnUpBlock2D, UpBlockType.UpBlock2D, UpBlockType.UpBlock2D],
            NormNumGroups = 8, AttentionHeadDim = 32,
        }),
        ("ddpm-tiny", new UNet2DConfig
        {
            SampleSize = 28, InChannels = 1, OutChannels = 1, BlockOutChannels = [16, 32], LayersPerBlock = 1,
            DownBlockTypes = [DownBlockType.DownBlock2D, DownBlockType.AttnDownBlock2D],
            UpBlockTypes = [UpBlockType.AttnUpBlock2D, UpBlockType.UpBlock2D],
            NormNumGroups = 8, AttentionHeadDim = 16,
        }),
        ("ddpm-anime-64", new UNet2DConfig
        {
            SampleSize = 64, InChannels = 3, OutChannels = 3, BlockOutChannels = [128, 128, 256, 256, 512, 512], LayersPerBlock = 2,
            DownBlockTypes = [DownBlockType.DownBlock2D, DownBlockType.DownBlock2D, DownBlockType.DownBlock2D, DownBlockType.DownBlock2D, DownBlockType.AttnDownBlock2D, DownBlockType.DownBlock2D],
            UpBlockTypes = [UpBlockType.UpBlock2D, UpBlockType.AttnUpBlock2D, UpBlockType.UpBlock2D, UpBlockType.UpBlock2D, UpBlockType.UpBlock2D, UpBlockType.UpBlock2D],
        }),
    ];

    /// <summary>The preset names, in the order listed.</summary>
    public static IEnumerable<string> Names => All.Select(p => p.Name);

    /// <summary>The preset named <paramref name="name"/> (exact, case-sensitive); false when there is none.</summary>
    public static bool TryGet(string name, out UNet2DConfig config)
    {
        foreach (var (n, c) in All)
            if (n == name) { config = c; return true; }
        config = null!;
        return false;
    }
}

// Named models: `train --preset` and `bench train --preset` build their UNet and diffusion from this one table.
// The bench presets (mnist-s, mnist-m, cifar-s) are improved-diffusion UNetModel arguments with everything else at
// UNetModel's defaults (use_scale_shift_norm False, num_heads_upsample −1, conv_resample True), trained with the
// linear schedule over T = 1000; scripts/bench_train_torch.py builds the same three models in PyTorch.
// attention_resolutions are pixel sizes, as in image_train.py: improved-diffusion turns each into the downsample
// rate image_size // res, so "14" on 28×28 is rate 2. The middle block always has attention.
namespace DiffuSharp.Models;

/// <summary>A named model and the batch size <c>bench train</c> times it with.</summary>
public sealed record ModelPreset(string Name, ModelConfig Model, int BatchSize, string Summary);

/// <summary>Ready-made models by name (<c>Presets.Get("tiny").Model</c>): the ones <c>diffusharp train --preset</c> takes.</summary>
public static class Presets
{
    /// <summary>Every preset, in the order the command line lists them.</summary>
    public static IReadOnlyList<ModelPreset> All { get; } =
    [
        new("tiny", new ModelConfig
        {
            ImageSize = 28, InChannels = 1, NumChannels = 32, NumResBlocks = 1, ChannelMult = "1,2", AttentionResolutions = "",
            DiffusionSteps = 100, UseScaleShiftNorm = true,
        }, BatchSize: 64, "1×28×28, 32 channels, mult 1,2, 1 res block, attention only in the middle, T = 100"),

        new("mnist-s", Bench(imageSize: 28, inChannels: 1, channels: 32, mult: "1,2,2", attention: "14"),
            BatchSize: 32, "1×28×28, 32 channels, mult 1,2,2, 2 res blocks, attention at 14×14 and in the middle"),

        new("mnist-m", Bench(imageSize: 28, inChannels: 1, channels: 64, mult: "1,2,2", attention: "14"),
            BatchSize: 64, "as mnist-s with 64 channels"),

        new("cifar-s", Bench(imageSize: 32, inChannels: 3, channels: 64, mult: "1,2,2,2", attention: "16"),
            BatchSize: 32, "3×32×32, 64 channels, mult 1,2,2,2, 2 res blocks, attention at 16×16 and in the middle"),

        // mnist-s's network with the settings improved-diffusion users train Fashion-MNIST with: 10 classes, the
        // cosine schedule (iDDPM §3.2) and scale-shift norm; attention only at 7×7 and in the middle block.
        new("fashion-mnist", Bench(imageSize: 28, inChannels: 1, channels: 32, mult: "1,2,2", attention: "7") with
        {
            ClassCond = true, NumClasses = 10, NoiseSchedule = "cosine", UseScaleShiftNorm = true,
        }, BatchSize: 32, "mnist-s's network, class-conditional (10), cosine schedule, scale-shift norm, attention at 7×7"),
    ];

    /// <summary>The preset names, comma-separated (for messages).</summary>
    public static string Names => string.Join(", ", All.Select(p => p.Name));

    /// <summary>The preset called <paramref name="name"/>; false when there is none.</summary>
    public static bool TryGet(string name, out ModelPreset preset)
    {
        preset = All.FirstOrDefault(p => p.Name == name)!;
        return preset is not null;
    }

    /// <summary>The preset called <paramref name="name"/>; an unknown name is an ArgumentException listing the presets.</summary>
    public static ModelPreset Get(string name)
        => TryGet(name, out var p) ? p : throw new ArgumentException($"unknown preset '{name}'; presets: {Names}");

    static ModelConfig Bench(int imageSize, int inChannels, int channels, string mult, string attention) => new()
    {
        ImageSize = imageSize, InChannels = inChannels, NumChannels = channels, NumResBlocks = 2, ChannelMult = mult,
        AttentionResolutions = attention, NumHeads = 1, Dropout = 0.1,
        UseScaleShiftNorm = false,                     // UNetModel's default (image_train.py's would be True)
        DiffusionSteps = 1000, NoiseSchedule = "linear",
    };
}

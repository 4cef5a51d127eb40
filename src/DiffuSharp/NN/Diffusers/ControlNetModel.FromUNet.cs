// diffusers' ControlNetModel.from_unet (diffusers 0.27.2, models/controlnet.py): a ControlNet whose config is the
// UNet's encoder half (ControlNetConfig.FromUNet) and whose conv_in, time embedding, class embedding, down blocks
// and mid block start as copies of the UNet's weights. The zero convolutions (controlnet_down_blocks,
// controlnet_mid_block, controlnet_cond_embedding.conv_out) start at zero (Zhang et al. 2023, §3), so before any
// training the ControlNet's residuals are exactly zero and the UNet's output is unchanged; the rest of the
// conditioning embedding is freshly initialised.
namespace DiffuSharp.NN.Diffusers;

public sealed partial class ControlNetModel
{
    /// <summary>The parameter-name prefixes copied from the UNet (the same names in both models).</summary>
    public static IReadOnlyList<string> CopiedFromUNet { get; } = ["conv_in.", "time_embedding.", "class_embedding.", "down_blocks.", "mid_block."];

    /// <summary>A ControlNet initialised from <paramref name="unet"/> (see the file header); <paramref name="rng"/>
    /// draws the conditioning embedding's first convolutions.</summary>
    public static ControlNetModel FromUNet(UNet2DConditionModel unet, int conditioningChannels = 3, int[]? conditioningEmbeddingOutChannels = null, Rng? rng = null)
    {
        ArgumentNullException.ThrowIfNull(unet);
        var net = new ControlNetModel(ControlNetConfig.FromUNet(unet.Config, conditioningChannels, conditioningEmbeddingOutChannels), rng ?? new Rng(0));
        var source = unet.NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        foreach (var (name, p) in net.NamedParameters())
        {
            if (!CopiedFromUNet.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal))) continue;
            if (!source.TryGetValue(name, out var from))
                throw new InvalidOperationException($"ControlNetModel.from_unet: the UNet has no parameter '{name}'");
            if (!ShapeUtil.Equal(from.ShapeSpan, p.ShapeSpan))
                throw new InvalidOperationException($"ControlNetModel.from_unet: '{name}' is {ShapeUtil.Format(from.ShapeSpan)} in the UNet, {ShapeUtil.Format(p.ShapeSpan)} here");
            from.Contiguous().Data.CopyTo(p.Data);
        }
        return net;
    }
}

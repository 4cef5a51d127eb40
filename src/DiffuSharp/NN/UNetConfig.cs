// The UNet's architecture as improved-diffusion's UNetModel arguments.
namespace DiffuSharp.NN;

/// <summary>improved-diffusion's UNetModel arguments.</summary>
/// <param name="InChannels">channels of the input image</param>
/// <param name="ModelChannels">the base channel count, multiplied per level by ChannelMult</param>
/// <param name="OutChannels">channels of the output (twice the image's with a learned variance)</param>
/// <param name="NumResBlocks">residual blocks per level</param>
/// <param name="AttentionResolutions">downsample rates ds (1, 2, 4, …) whose levels get attention blocks, not pixel
/// sizes; null: none</param>
/// <param name="Dropout">dropout probability inside residual blocks</param>
/// <param name="ChannelMult">per-level multipliers of ModelChannels; null: (1, 2, 4, 8), UNetModel's default</param>
/// <param name="ConvResample">strided and post-upsample 3×3 convs instead of plain pooling and copying</param>
/// <param name="NumClasses">class-conditional when set: a label embedding added to the time embedding</param>
/// <param name="NumHeads">attention heads in the down and middle blocks</param>
/// <param name="NumHeadsUpsample">attention heads in the up blocks; −1: same as NumHeads</param>
/// <param name="UseScaleShiftNorm">FiLM-like conditioning, out_norm(h)·(1 + scale) + shift from the embedding</param>
/// <param name="UseConvSkip">3×3 instead of 1×1 skip convs where the channel count changes</param>
/// <param name="NullClass">label_emb gets one more row, label NumClasses meaning "no class" (classifier-free
/// guidance)</param>
public sealed record UNetConfig(
    int InChannels = 3,
    int ModelChannels = 128,
    int OutChannels = 3,
    int NumResBlocks = 2,
    int[]? AttentionResolutions = null,   // downsample rates ds (1, 2, 4, …) that get attention, not pixel sizes
    float Dropout = 0f,
    int[]? ChannelMult = null,            // default (1, 2, 4, 8) as UNetModel's own default
    bool ConvResample = true,             // strided / post-upsample 3×3 convs instead of plain pooling / copying
    int? NumClasses = null,               // class-conditional when set: label embedding added to the time embedding
    int NumHeads = 1,
    int NumHeadsUpsample = -1,            // −1: same as NumHeads
    bool UseScaleShiftNorm = false,       // FiLM-like: out_norm(h)·(1 + scale) + shift from the embedding
    bool UseConvSkip = false,             // 3×3 instead of 1×1 skip convs where channels change
    bool NullClass = false)               // label_emb gets one more row, label NumClasses = "no class" (classifier-free guidance)
{
    /// <summary>The label that means "no class" (the last label_emb row), or null when the model has none.</summary>
    public int? NullLabel => NullClass && NumClasses is int k ? k : null;

    /// <summary><see cref="ChannelMult"/> or its default (1, 2, 4, 8).</summary>
    public int[] Mult => ChannelMult ?? [1, 2, 4, 8];
    /// <summary><see cref="AttentionResolutions"/> or none.</summary>
    public int[] AttentionDs => AttentionResolutions ?? [];
    /// <summary>Limits far above any model here, so absurd values fail before allocating: channels per layer, levels.</summary>
    public const int MaxChannels = 1 << 16, MaxLevels = 16;

    /// <summary>The attention heads of the up blocks: <see cref="NumHeadsUpsample"/>, or <see cref="NumHeads"/> when it
    /// is −1.</summary>
    public int HeadsUpsample => NumHeadsUpsample == -1 ? NumHeads : NumHeadsUpsample;

    /// <summary>Throws with a clear message if the combination cannot build a model.</summary>
    public void Validate()
    {
        if (InChannels < 1 || OutChannels < 1) throw new ArgumentException($"UNet: in/out channels must be positive, got {InChannels}/{OutChannels}");
        if (ModelChannels < 32 || ModelChannels % 32 != 0) throw new ArgumentException($"UNet: model channels must be a positive multiple of 32 (GroupNorm(32)), got {ModelChannels}");
        if (NumResBlocks < 1) throw new ArgumentException($"UNet: num_res_blocks must be at least 1, got {NumResBlocks}");
        if (Mult.Length == 0 || Mult.Any(m => m < 1)) throw new ArgumentException($"UNet: channel_mult must be positive integers, got ({string.Join(",", Mult)})");
        if (Mult.Length > MaxLevels) throw new ArgumentException($"UNet: channel_mult has {Mult.Length} levels, at most {MaxLevels} are supported");
        if ((long)ModelChannels * Mult.Max() > MaxChannels)
            throw new ArgumentException($"UNet: num_channels × channel_mult = {ModelChannels} × {Mult.Max()} = {(long)ModelChannels * Mult.Max()} channels, more than the {MaxChannels} supported");
        if (NumHeads < 1) throw new ArgumentException($"UNet: num_heads must be at least 1, got {NumHeads}");
        if (NumHeadsUpsample is not (-1 or >= 1)) throw new ArgumentException($"UNet: num_heads_upsample must be -1 (= num_heads) or at least 1, got {NumHeadsUpsample}");
        if (Dropout < 0 || Dropout >= 1) throw new ArgumentException($"UNet: dropout must be in [0, 1), got {Dropout}");
        if (NumClasses is < 1) throw new ArgumentException($"UNet: num_classes must be positive, got {NumClasses}");
        if (NullClass && NumClasses is null) throw new ArgumentException("UNet: a null class needs a class-conditional model (num_classes)");
    }

    /// <summary>The image side must halve cleanly at every downsample.</summary>
    public void ValidateImageSize(int imageSize)
    {
        int factor = 1 << (Mult.Length - 1);
        if (imageSize < 1 || imageSize % factor != 0)
            throw new ArgumentException($"image size {imageSize} is not divisible by {factor}, the UNet's downsampling factor for channel_mult ({string.Join(",", Mult)})");
    }
}

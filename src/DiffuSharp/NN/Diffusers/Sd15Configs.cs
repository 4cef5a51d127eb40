// Stable Diffusion 1.5's component configs (runwayml/stable-diffusion-v1-5 unet/, vae/ and text_encoder/ config.json, as in the
// reference data's sd15/sd15_configs.json), for building full-size models on random weights (benchmarks).
using DiffuSharp.NN.Clip;

namespace DiffuSharp.NN.Diffusers;

/// <summary>Stable Diffusion 1.5's component configs (runwayml/stable-diffusion-v1-5), for building full-size models on
/// random weights, e.g. for benchmarks.</summary>
public static class Sd15Configs
{
    /// <summary>SD 1.5's UNet2DConditionModel: 320/640/1280/1280 channels, 2 layers per block, 8 heads, context 768.</summary>
    public static UNet2DConditionConfig UNet => new()
    {
        SampleSize = 64,
        CrossAttentionDim = [768, 768, 768, 768],
    };

    /// <summary>SD 1.5's AutoencoderKL: 128/256/512/512 channels, 2 layers per block, latents ×8 smaller than images.</summary>
    public static AutoencoderKLConfig Vae => new()
    {
        BlockOutChannels = [128, 256, 512, 512],
        LayersPerBlock = 2,
        SampleSize = 512,
    };

    /// <summary>SD 1.5's CLIPTextModel (CLIP ViT-L/14's text tower): 768 wide, 12 layers of 12 heads, quick_gelu, with
    /// the legacy ids of the configs saved before transformers 4.31 (bos 0, eos 2: pooling takes the argmax id).</summary>
    public static ClipTextConfig TextEncoder => new(HiddenSize: 768, IntermediateSize: 3072, NumHiddenLayers: 12, NumAttentionHeads: 12,
        MaxPositionEmbeddings: 77, HiddenAct: ClipActivation.QuickGelu, BosTokenId: 0, EosTokenId: 2, ProjectionDim: 768);
}

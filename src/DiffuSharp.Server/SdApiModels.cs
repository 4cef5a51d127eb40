// sd-webui's API request and response shapes (AUTOMATIC1111 stable-diffusion-webui, modules/api/models.py:
// StableDiffusionTxt2ImgProcessingAPI, StableDiffusionImg2ImgProcessingAPI, TextToImageResponse, ProgressResponse,
// SamplerItem, SDModelItem), with its field names and types, so its clients work unchanged. Fields this engine has no
// counterpart for are accepted at their defaults and refused (400, by name) when a client asks for them.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffuSharp.Server;

public class SdTxt2ImgRequest
{
    [JsonPropertyName("prompt")] public string? Prompt { get; set; } = "";
    [JsonPropertyName("negative_prompt")] public string? NegativePrompt { get; set; } = "";
    [JsonPropertyName("styles")] public List<string>? Styles { get; set; }
    [JsonPropertyName("seed")] public long Seed { get; set; } = -1;
    [JsonPropertyName("subseed")] public long Subseed { get; set; } = -1;
    [JsonPropertyName("subseed_strength")] public double SubseedStrength { get; set; }
    [JsonPropertyName("seed_resize_from_h")] public int SeedResizeFromH { get; set; } = -1;
    [JsonPropertyName("seed_resize_from_w")] public int SeedResizeFromW { get; set; } = -1;
    [JsonPropertyName("sampler_name")] public string? SamplerName { get; set; }
    [JsonPropertyName("sampler_index")] public string? SamplerIndex { get; set; }
    [JsonPropertyName("scheduler")] public string? Scheduler { get; set; }
    [JsonPropertyName("batch_size")] public int BatchSize { get; set; } = 1;
    [JsonPropertyName("n_iter")] public int NIter { get; set; } = 1;
    [JsonPropertyName("steps")] public int Steps { get; set; } = 50;
    [JsonPropertyName("cfg_scale")] public double CfgScale { get; set; } = 7.0;
    /// <summary>Absent: the model's own size (512 for Stable Diffusion 1.x, sd-webui's default; 32 for a Fashion-MNIST pipeline).</summary>
    [JsonPropertyName("width")] public int? Width { get; set; }
    /// <summary>Absent: the model's own size, as <see cref="Width"/>.</summary>
    [JsonPropertyName("height")] public int? Height { get; set; }
    [JsonPropertyName("restore_faces")] public bool? RestoreFaces { get; set; }
    [JsonPropertyName("tiling")] public bool? Tiling { get; set; }
    [JsonPropertyName("do_not_save_samples")] public bool DoNotSaveSamples { get; set; }
    [JsonPropertyName("do_not_save_grid")] public bool DoNotSaveGrid { get; set; }
    [JsonPropertyName("eta")] public double? Eta { get; set; }
    [JsonPropertyName("denoising_strength")] public double? DenoisingStrength { get; set; }
    [JsonPropertyName("s_min_uncond")] public double? SMinUncond { get; set; }
    [JsonPropertyName("s_churn")] public double? SChurn { get; set; }
    [JsonPropertyName("s_tmax")] public double? STmax { get; set; }
    [JsonPropertyName("s_tmin")] public double? STmin { get; set; }
    [JsonPropertyName("s_noise")] public double? SNoise { get; set; }
    [JsonPropertyName("override_settings")] public Dictionary<string, JsonElement>? OverrideSettings { get; set; }
    [JsonPropertyName("override_settings_restore_afterwards")] public bool OverrideSettingsRestoreAfterwards { get; set; } = true;
    [JsonPropertyName("enable_hr")] public bool EnableHr { get; set; }
    [JsonPropertyName("script_name")] public string? ScriptName { get; set; }
    [JsonPropertyName("script_args")] public List<JsonElement>? ScriptArgs { get; set; }
    [JsonPropertyName("send_images")] public bool SendImages { get; set; } = true;
    [JsonPropertyName("save_images")] public bool SaveImages { get; set; }
    [JsonPropertyName("alwayson_scripts")] public Dictionary<string, JsonElement>? AlwaysonScripts { get; set; }
}

public sealed class SdImg2ImgRequest : SdTxt2ImgRequest
{
    [JsonPropertyName("init_images")] public List<string>? InitImages { get; set; }
    [JsonPropertyName("resize_mode")] public int ResizeMode { get; set; }
    [JsonPropertyName("image_cfg_scale")] public double? ImageCfgScale { get; set; }
    /// <summary>base64 PNG; white repaints (inpainting)</summary>
    [JsonPropertyName("mask")] public string? Mask { get; set; }
    [JsonPropertyName("mask_blur")] public int? MaskBlur { get; set; }
    [JsonPropertyName("inpainting_fill")] public int InpaintingFill { get; set; }
    [JsonPropertyName("inpaint_full_res")] public bool InpaintFullRes { get; set; } = true;
    [JsonPropertyName("inpainting_mask_invert")] public int InpaintingMaskInvert { get; set; }
    [JsonPropertyName("include_init_images")] public bool IncludeInitImages { get; set; }

    public SdImg2ImgRequest() => DenoisingStrength = 0.75;
}

/// <summary>TextToImageResponse / ImageToImageResponse: base64 PNGs, the request's parameters, and info (a JSON string).</summary>
public sealed record SdImagesResponse(
    [property: JsonPropertyName("images")] IReadOnlyList<string> Images,
    [property: JsonPropertyName("parameters")] JsonElement Parameters,
    [property: JsonPropertyName("info")] string Info);

public sealed record SdProgressState(
    [property: JsonPropertyName("skipped")] bool Skipped,
    [property: JsonPropertyName("interrupted")] bool Interrupted,
    [property: JsonPropertyName("stopping_generation")] bool StoppingGeneration,
    [property: JsonPropertyName("job")] string Job,
    [property: JsonPropertyName("job_count")] int JobCount,
    [property: JsonPropertyName("job_timestamp")] string JobTimestamp,
    [property: JsonPropertyName("job_no")] int JobNo,
    [property: JsonPropertyName("sampling_step")] int SamplingStep,
    [property: JsonPropertyName("sampling_steps")] int SamplingSteps);

public sealed record SdProgressResponse(
    [property: JsonPropertyName("progress")] double Progress,
    [property: JsonPropertyName("eta_relative")] double EtaRelative,
    [property: JsonPropertyName("state")] SdProgressState State,
    [property: JsonPropertyName("current_image")] string? CurrentImage,
    [property: JsonPropertyName("textinfo")] string? TextInfo);

public sealed record SdModelItem(
    [property: JsonPropertyName("title")] string Title,
    [property: JsonPropertyName("model_name")] string ModelName,
    [property: JsonPropertyName("hash")] string? Hash,
    [property: JsonPropertyName("sha256")] string? Sha256,
    [property: JsonPropertyName("filename")] string Filename,
    [property: JsonPropertyName("config")] string? Config);

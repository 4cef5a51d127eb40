// The JSON shapes of the page's own API (/api/...). Field names are snake_case like sd-webui's, so one vocabulary
// serves both APIs.
using System.Text.Json.Serialization;

namespace DiffuSharp.Server;

/// <summary>POST /api/jobs: a generation for the page (answers at once with the job's id; progress comes from
/// /api/jobs/{id}/events).</summary>
public sealed class JobRequest
{
    [JsonPropertyName("model")] public string? Model { get; set; }
    /// <summary>txt2img | img2img | inpaint</summary>
    [JsonPropertyName("mode")] public string Mode { get; set; } = "txt2img";
    /// <summary>pipelines: the prompt; class-conditional pixel models: a class name or label ("" = one of each in turn)</summary>
    [JsonPropertyName("prompt")] public string Prompt { get; set; } = "";
    [JsonPropertyName("negative_prompt")] public string NegativePrompt { get; set; } = "";
    [JsonPropertyName("sampler_name")] public string? SamplerName { get; set; }
    [JsonPropertyName("steps")] public int Steps { get; set; } = 20;
    [JsonPropertyName("cfg_scale")] public double CfgScale { get; set; } = 7.0;
    [JsonPropertyName("seed")] public long Seed { get; set; } = -1;
    [JsonPropertyName("width")] public int Width { get; set; }
    [JsonPropertyName("height")] public int Height { get; set; }
    [JsonPropertyName("batch_size")] public int BatchSize { get; set; } = 1;
    [JsonPropertyName("n_iter")] public int NIter { get; set; } = 1;
    [JsonPropertyName("denoising_strength")] public double DenoisingStrength { get; set; } = 0.75;
    /// <summary>base64 PNG (or a data: URL)</summary>
    [JsonPropertyName("init_image")] public string? InitImage { get; set; }
    /// <summary>base64 PNG; white repaints</summary>
    [JsonPropertyName("mask")] public string? Mask { get; set; }
    /// <summary>base64 PNG for the model's first ControlNet (the first of <c>controlnet_names</c>); <c>controlnets</c> names others</summary>
    [JsonPropertyName("control_image")] public string? ControlImage { get; set; }
    [JsonPropertyName("control_scale")] public double ControlScale { get; set; } = 1.0;
    /// <summary>ControlNets by name (the model's <c>controlnet_names</c>), each with its control image and scale; their
    /// residuals are summed</summary>
    [JsonPropertyName("controlnets")] public List<ControlNetRequest>? ControlNets { get; set; }
    /// <summary>interpolation (pixel models): x_T = slerp(noise(seed), noise(seed2), mix)</summary>
    [JsonPropertyName("seed2")] public long? Seed2 { get; set; }
    [JsonPropertyName("mix")] public double Mix { get; set; }
    /// <summary>pixel models: also a strip of x_t and x0 over the steps</summary>
    [JsonPropertyName("trajectory")] public bool Trajectory { get; set; }
}

/// <summary>One ControlNet of a job: which net, its control image (base64 PNG of the output's size) and its conditioning
/// scale, acting from <c>guidance_start</c> to <c>guidance_end</c> of the steps.</summary>
public sealed class ControlNetRequest
{
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("image")] public string? Image { get; set; }
    [JsonPropertyName("scale")] public double Scale { get; set; } = 1.0;
    [JsonPropertyName("guidance_start")] public double GuidanceStart { get; set; }
    [JsonPropertyName("guidance_end")] public double GuidanceEnd { get; set; } = 1.0;
}

public sealed record JobAccepted([property: JsonPropertyName("id")] string Id, [property: JsonPropertyName("queued")] int Queued);

public sealed record ModelInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("width")] int Width,
    [property: JsonPropertyName("height")] int Height,
    [property: JsonPropertyName("channels")] int Channels,
    [property: JsonPropertyName("classes")] IReadOnlyList<string> Classes,
    [property: JsonPropertyName("guidance")] bool Guidance,
    [property: JsonPropertyName("controlnets")] int ControlNets,
    [property: JsonPropertyName("default_sampler")] string DefaultSampler,
    [property: JsonPropertyName("controlnet_names")] IReadOnlyList<string> ControlNetNames)
{
    public static ModelInfo From(ModelEntry m) => new(m.Name, m.Kind == ModelKind.Pixel ? "pixel" : "pipeline", m.Width, m.Height,
        m.Channels, m.ClassNames, m.Guidance, m.ControlNets, m.DefaultSampler, [.. m.ControlNetList.Select(n => n.Name)]);
}

public sealed record ImageInfo(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("url")] string Url,
    [property: JsonPropertyName("parameters")] string Parameters,
    [property: JsonPropertyName("seed")] long Seed)
{
    public static ImageInfo From(JobImage i) => new(i.Id, i.Model, $"/api/images/{i.Id}.png", i.Parameters, i.Seed);
}

public sealed record JobStatus(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("state")] string State,
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("batch")] int Batch,
    [property: JsonPropertyName("batches")] int Batches,
    [property: JsonPropertyName("elapsed")] double Elapsed,
    [property: JsonPropertyName("eta")] double Eta,
    [property: JsonPropertyName("steps_per_second")] double StepsPerSecond,
    [property: JsonPropertyName("preview_count")] int PreviewCount,
    [property: JsonPropertyName("images")] IReadOnlyList<ImageInfo>? Images,
    [property: JsonPropertyName("trajectory")] string? Trajectory,
    [property: JsonPropertyName("warnings")] IReadOnlyList<string>? Warnings,
    [property: JsonPropertyName("error")] string? Error)
{
    public static JobStatus From(Job job)
    {
        var p = job.Progress;
        var r = job.Completion.IsCompletedSuccessfully ? job.Completion.Result : null;
        return new JobStatus(job.Id, p.State.ToString().ToLowerInvariant(), p.Step, p.Steps, p.Batch, p.Batches, Math.Round(p.ElapsedSeconds, 3),
            Math.Round(p.EtaSeconds, 3), Math.Round(p.StepsPerSecond, 2), p.PreviewCount, r?.Images.Select(ImageInfo.From).ToList(),
            r?.Trajectory is null ? null : $"/api/jobs/{job.Id}/trajectory.png", r?.Warnings, r?.Error);
    }
}

public sealed record SamplerInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("aliases")] IReadOnlyList<string> Aliases,
    [property: JsonPropertyName("options")] IReadOnlyDictionary<string, string> Options);

public sealed record ServerStatus(
    [property: JsonPropertyName("current")] string? Current,
    [property: JsonPropertyName("queued")] int Queued,
    [property: JsonPropertyName("completed")] long Completed,
    [property: JsonPropertyName("cancelled")] long Cancelled,
    [property: JsonPropertyName("failed")] long Failed,
    [property: JsonPropertyName("managed_bytes")] long ManagedBytes);

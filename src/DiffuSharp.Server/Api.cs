// The page's own API: models and samplers, jobs (queued at once, followed over Server-Sent Events, cancelled), the
// gallery and its PNGs, and the edge and silhouette detectors for ControlNet images. Progress goes to the page as Server-Sent Events
// rather than polling: a pixel model's step takes milliseconds, so polling would either miss previews or hammer the
// server, while an event stream pushes each new preview once, over one plain HTTP response the browser's EventSource
// reads natively (and reconnects). sd-webui's clients poll /sdapi/v1/progress instead; both read the same Job.
using System.Text.Json;
using DiffuSharp.Imaging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DiffuSharp.Server;

public static class Api
{
    public static void Map(WebApplication app, ServerState state)
    {
        var api = app.MapGroup("/api").WithTags("DiffuSharp");
        api.MapGet("/models", () => state.Catalog.Models.Select(ModelInfo.From).ToList());
        api.MapGet("/samplers", () => SdApi.Samplers());
        api.MapGet("/status", () => Status(state));
        api.MapPost("/jobs", async (HttpContext ctx) =>
        {
            var r = await RequestBody.ReadJsonAsync<JobRequest>(ctx, state.Options.Limits.MaxBodyBytes);
            var job = state.Submit(Spec(r, state), state.Model(r.Model));
            return Results.Json(new JobAccepted(job.Id, state.Runner.Queued), statusCode: 202);
        }).Accepts<JobRequest>("application/json").Produces<JobAccepted>(202).Produces<ErrorBody>(400).Produces<ErrorBody>(429);
        api.MapGet("/jobs/{id}", (string id) => Results.Json(JobStatus.From(FindJob(state, id))));
        api.MapPost("/jobs/{id}/cancel", (string id) =>
        {
            var job = FindJob(state, id);
            job.Cancel("cancelled");
            return Results.Json(JobStatus.From(job));
        });
        api.MapGet("/jobs/{id}/events", (string id, HttpContext ctx) => Events(FindJob(state, id), ctx));
        api.MapGet("/jobs/{id}/trajectory.png", (string id) =>
        {
            var job = FindJob(state, id);
            var t = job.Completion.IsCompletedSuccessfully ? job.Completion.Result.Trajectory : null;
            return t is null ? HttpError.Result(404, $"job {id} has no trajectory (ask with \"trajectory\": true on a pixel model)") : Results.Bytes(t, "image/png");
        });
        api.MapGet("/gallery", () => state.Gallery.Items.Select(ImageInfo.From).ToList());
        api.MapGet("/images/{file}", (string file) =>
        {
            var image = file.EndsWith(".png", StringComparison.Ordinal) ? state.Gallery.Find(file[..^4]) : null;
            return image is null ? HttpError.Result(404, $"no image '{Short(file)}' in the gallery") : Results.Bytes(image.Png, "image/png");
        });
        api.MapPost("/edges", async (HttpContext ctx) =>
        {
            var r = await RequestBody.ReadJsonAsync<EdgesRequest>(ctx, state.Options.Limits.MaxBodyBytes);
            if (r.Image is null) throw new HttpError(400, "image: a base64 PNG is required");
            var image = RequestBody.DecodeImage("image", r.Image, state.Options.Limits.MaxImagePixels);
            if (r.Width is int w && r.Height is int h)
            {
                if (w < 8 || h < 8 || w > state.Options.Limits.MaxSide || h > state.Options.Limits.MaxSide)
                    throw new HttpError(400, $"width and height must be between 8 and {state.Options.Limits.MaxSide}, got {w}x{h}");
                image = ImageResize.Cover(image.WithChannels(3), w, h);
            }
            var control = r.Mode switch
            {
                "edges" => Canny.Detect(image, new CannyOptions(Low: r.Low, High: r.High)),
                "silhouette" => double.IsFinite(r.Threshold) && r.Threshold is >= 0 and <= 1 ? ControlUnits.SilhouetteImage(image, r.Threshold, r.Invert)
                    : throw new HttpError(400, $"threshold must be between 0 and 1, got {r.Threshold}"),
                _ => throw new HttpError(400, $"mode must be edges or silhouette, got '{Short(r.Mode ?? "")}'"),
            };
            return Results.Json(new EdgesResponse(Convert.ToBase64String(Png.Encode(control))));
        }).Accepts<EdgesRequest>("application/json").Produces<EdgesResponse>();
    }

    public static GenerationSpec Spec(JobRequest r, ServerState state)
    {
        var mode = r.Mode switch
        {
            "txt2img" => GenerationMode.Txt2Img,
            "img2img" => GenerationMode.Img2Img,
            "inpaint" => GenerationMode.Inpaint,
            _ => throw new HttpError(400, $"mode must be txt2img, img2img or inpaint, got '{Short(r.Mode)}'"),
        };
        int max = state.Options.Limits.MaxImagePixels;
        return new GenerationSpec(r.Model ?? state.DefaultModel ?? "", mode, r.Prompt ?? "", r.NegativePrompt ?? "", r.SamplerName, r.Steps, r.CfgScale, r.Seed,
            r.Width, r.Height, r.BatchSize, r.NIter, r.DenoisingStrength,
            r.InitImage is null ? null : RequestBody.DecodeImage("init_image", r.InitImage, max),
            r.Mask is null ? null : RequestBody.DecodeImage("mask", r.Mask, max),
            ControlUnits.FromJobRequest(r, max), r.Seed2, r.Mix, r.Trajectory);
    }

    static Job FindJob(ServerState state, string id) => state.Runner.Find(id) ?? throw new HttpError(404, $"no job '{Short(id)}'");

    static string Short(string s) => s.Length <= 80 ? s : s[..80] + "…";

    static ServerStatus Status(ServerState state)
        => new(state.Runner.Current?.Id, state.Runner.Queued, state.Runner.Completed, state.Runner.Cancelled, state.Runner.Failed, GC.GetTotalMemory(false));

    /// <summary>The job's progress as Server-Sent Events: "progress" after each change (with the preview as a data: URL
    /// when a new one came), then one "done" with the final status. A client that goes away cancels the job.</summary>
    static async Task Events(Job job, HttpContext ctx)
    {
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        var ct = ctx.RequestAborted;
        long seen = -1;
        int previews = 0;
        try
        {
            while (true)
            {
                var p = job.Progress;
                if (p.State is JobState.Done or JobState.Cancelled or JobState.Failed)
                {
                    await Send(ctx, "done", JsonSerializer.Serialize(JobStatus.From(job)), ct);
                    return;
                }
                if (p.Version != seen)
                {
                    seen = p.Version;
                    string? preview = null;
                    if (p.PreviewCount != previews && job.Preview is { } png)
                    {
                        previews = p.PreviewCount;
                        preview = "data:image/png;base64," + Convert.ToBase64String(png);
                    }
                    var status = JobStatus.From(job);
                    await Send(ctx, "progress", JsonSerializer.Serialize(new { status, preview }), ct);
                }
                await job.WaitForChangeAsync(seen, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            job.Cancel("client disconnected");
        }
    }

    static async Task Send(HttpContext ctx, string name, string json, CancellationToken ct)
    {
        await ctx.Response.WriteAsync($"event: {name}\ndata: {json}\n\n", ct);
        await ctx.Response.Body.FlushAsync(ct);
    }
}

public sealed class EdgesRequest
{
    [System.Text.Json.Serialization.JsonPropertyName("image")] public string? Image { get; set; }
    /// <summary>resize (cover + centre crop) to this size first, e.g. the control image's size</summary>
    [System.Text.Json.Serialization.JsonPropertyName("width")] public int? Width { get; set; }
    [System.Text.Json.Serialization.JsonPropertyName("height")] public int? Height { get; set; }
    /// <summary>Canny's hysteresis thresholds on the gradient magnitude of the image in [0, 1] (<see cref="CannyOptions"/>)</summary>
    [System.Text.Json.Serialization.JsonPropertyName("low")] public double Low { get; set; } = new CannyOptions().Low;
    [System.Text.Json.Serialization.JsonPropertyName("high")] public double High { get; set; } = new CannyOptions().High;
    /// <summary>edges (Canny, white on black) or silhouette (the filled object mask, as `diffusharp edges --silhouette`)</summary>
    [System.Text.Json.Serialization.JsonPropertyName("mode")] public string? Mode { get; set; } = "edges";
    /// <summary>silhouette: object pixels are brighter than this gray level in [0, 1] (darker with invert)</summary>
    [System.Text.Json.Serialization.JsonPropertyName("threshold")] public double Threshold { get; set; } = 0.05;
    [System.Text.Json.Serialization.JsonPropertyName("invert")] public bool Invert { get; set; }
}

public sealed record EdgesResponse([property: System.Text.Json.Serialization.JsonPropertyName("image")] string Image);

// sd-webui's API subset (AUTOMATIC1111 stable-diffusion-webui, modules/api/api.py): txt2img and img2img answer when
// the images are done (base64 PNGs with their `parameters` chunk, and `info` as a JSON string); progress, interrupt,
// samplers, sd-models and options (sd_model_checkpoint: the model a request that names none uses).
// On a class-conditional pixel model the prompt names the class: "sneaker", "Sneaker" or "7" draw class 7, an empty
// prompt draws one of each class in turn; width and height are the model's own (the fields are ignored there, since
// sd-webui clients always send them), cfg_scale needs a model trained with a null label and is ignored otherwise
// (said in info.warnings), and negative_prompt must be empty. alwayson_scripts takes sd-webui-controlnet's units
// (ControlUnits.cs); other scripts are refused.
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DiffuSharp.Server;

public static class SdApi
{
    public static void Map(WebApplication app, ServerState state)
    {
        var sd = app.MapGroup("/sdapi/v1").WithTags("sd-webui");
        sd.MapPost("/txt2img", async (HttpContext ctx) =>
        {
            var r = await RequestBody.ReadJsonAsync<SdTxt2ImgRequest>(ctx, state.Options.Limits.MaxBodyBytes);
            return await Run(state, ctx, r, null);
        }).Accepts<SdTxt2ImgRequest>("application/json").Produces<SdImagesResponse>().Produces<ErrorBody>(400).Produces<ErrorBody>(429);
        sd.MapPost("/img2img", async (HttpContext ctx) =>
        {
            var r = await RequestBody.ReadJsonAsync<SdImg2ImgRequest>(ctx, state.Options.Limits.MaxBodyBytes);
            return await Run(state, ctx, r, r);
        }).Accepts<SdImg2ImgRequest>("application/json").Produces<SdImagesResponse>().Produces<ErrorBody>(400).Produces<ErrorBody>(429);
        sd.MapGet("/progress", (bool? skip_current_image) => Progress(state, skip_current_image ?? false));
        sd.MapPost("/interrupt", () =>
        {
            state.Runner.Current?.Cancel("interrupted");
            return Results.Json(new Dictionary<string, object>());
        });
        sd.MapGet("/samplers", Samplers);
        sd.MapGet("/sd-models", () => state.Catalog.Models.Select(m => new SdModelItem(m.Name, m.Name, null, null, m.Name, null)).ToList());
        sd.MapGet("/options", () => new Dictionary<string, string?> { ["sd_model_checkpoint"] = state.DefaultModel });
        sd.MapPost("/options", async (HttpContext ctx) =>
        {
            var o = await RequestBody.ReadJsonAsync<Dictionary<string, JsonElement>>(ctx, state.Options.Limits.MaxBodyBytes);
            foreach (var (key, value) in o)
            {
                if (key != "sd_model_checkpoint") throw new HttpError(400, $"option '{key}' is not supported; only sd_model_checkpoint");
                if (value.ValueKind != JsonValueKind.String) throw new HttpError(400, "sd_model_checkpoint must be a string");
                state.DefaultModel = state.Model(ModelName(value.GetString())).Name;
            }
            return Results.Json(new Dictionary<string, object>());
        }).Accepts<Dictionary<string, JsonElement>>("application/json");
    }

    /// <summary>sd-webui's samplers: every sampler by its display name (CLI name as alias), and the Karras variants.</summary>
    public static List<SamplerInfo> Samplers()
    {
        var list = new List<SamplerInfo>();
        foreach (var s in Schedulers.SchedulerFactory.Samplers)
            list.Add(new SamplerInfo(s.DisplayName, [s.CliName, s.ClassName], new Dictionary<string, string>()));
        foreach (var s in Schedulers.SchedulerFactory.Samplers.Where(s => s.CliName is "lms" or "euler" or "heun" or "kdpm2" or "kdpm2_a" or "dpm++2m" or "dpm++2m_sde" or "dpm++3m" or "dpm_single"))
            list.Add(new SamplerInfo(s.DisplayName + " Karras", [s.CliName + " --karras"], new Dictionary<string, string> { ["scheduler"] = "karras" }));
        return list;
    }

    /// <summary>A model title as sd-webui writes it ("name [hash]") to the name.</summary>
    static string? ModelName(string? title)
    {
        if (title is null) return null;
        int bracket = title.LastIndexOf(" [", StringComparison.Ordinal);
        return bracket > 0 && title.EndsWith(']') ? title[..bracket] : title;
    }

    static async Task<IResult> Run(ServerState state, HttpContext ctx, SdTxt2ImgRequest r, SdImg2ImgRequest? i2i)
    {
        Refuse(r.EnableHr, "enable_hr (hires. fix)");
        Refuse(r.RestoreFaces == true, "restore_faces");
        Refuse(r.Tiling == true, "tiling");
        Refuse(!string.IsNullOrEmpty(r.ScriptName), "script_name");
        Refuse(r.SubseedStrength != 0, "subseed_strength");
        Refuse(r.Styles is { Count: > 0 }, "styles");
        string? modelName = state.DefaultModel;
        if (r.OverrideSettings is { } os)
            foreach (var (key, value) in os)
            {
                if (key != "sd_model_checkpoint") throw new HttpError(400, $"override_settings: '{key}' is not supported; only sd_model_checkpoint");
                if (value.ValueKind != JsonValueKind.String) throw new HttpError(400, "override_settings.sd_model_checkpoint must be a string");
                modelName = ModelName(value.GetString());
            }
        var model = state.Model(modelName);
        string? sampler = r.SamplerName ?? r.SamplerIndex;
        if (r.Scheduler is { Length: > 0 } sch && sch != "Automatic")
        {
            if (!string.Equals(sch, "Karras", StringComparison.OrdinalIgnoreCase)) throw new HttpError(400, $"scheduler '{sch}' is not supported; Automatic or Karras");
            sampler = (sampler ?? model.DefaultSampler) + " Karras";
        }
        var mode = GenerationMode.Txt2Img;
        int max = state.Options.Limits.MaxImagePixels;
        DiffuSharp.Imaging.Image8? init = null, mask = null;
        if (i2i is not null)
        {
            if (i2i.InitImages is not { Count: > 0 }) throw new HttpError(400, "init_images: give one base64 PNG");
            if (i2i.InitImages.Count > 1) throw new HttpError(400, $"init_images: one image is supported, got {i2i.InitImages.Count}");
            init = RequestBody.DecodeImage("init_images[0]", i2i.InitImages[0], max);
            mode = GenerationMode.Img2Img;
            if (i2i.Mask is { Length: > 0 })
            {
                mask = RequestBody.DecodeImage("mask", i2i.Mask, max);
                if (i2i.InpaintingMaskInvert == 1) mask = mask with { Pixels = mask.Pixels.Select(b => (byte)(255 - b)).ToArray() };
                mode = GenerationMode.Inpaint;
            }
        }
        var spec = new GenerationSpec(model.Name, mode, r.Prompt ?? "", r.NegativePrompt ?? "", sampler, r.Steps, r.CfgScale, r.Seed,
            mode == GenerationMode.Txt2Img ? r.Width ?? 0 : 0, mode == GenerationMode.Txt2Img ? r.Height ?? 0 : 0, r.BatchSize, r.NIter,
            r.DenoisingStrength ?? 0.75, init, mask, ControlUnits.FromAlwaysOnScripts(r.AlwaysonScripts, max));
        var job = state.Submit(spec, model);
        JobResult result;
        using (ctx.RequestAborted.Register(() => job.Cancel("client disconnected")))
            result = await job.Completion;
        if (job.State == JobState.Failed) throw new HttpError(500, $"generation failed: {result.Error}");
        var s = job.Spec;
        var infotexts = result.Images.Select(x => x.Parameters).ToList();
        var seeds = Enumerable.Range(0, s.ImageCount).Select(k => s.Seed + k).ToList();
        var info = new Dictionary<string, object?>
        {
            ["prompt"] = s.Prompt, ["all_prompts"] = Enumerable.Repeat(s.Prompt, s.ImageCount).ToList(),
            ["negative_prompt"] = s.NegativePrompt, ["all_negative_prompts"] = Enumerable.Repeat(s.NegativePrompt, s.ImageCount).ToList(),
            ["seed"] = s.Seed, ["all_seeds"] = seeds, ["subseed"] = -1, ["all_subseeds"] = Enumerable.Repeat(-1, s.ImageCount).ToList(),
            ["subseed_strength"] = 0, ["width"] = s.Width, ["height"] = s.Height, ["sampler_name"] = GenerationEngine.DisplayName(s.Sampler!),
            ["cfg_scale"] = s.CfgScale, ["steps"] = s.Steps, ["batch_size"] = s.BatchSize, ["n_iter"] = s.NIter,
            ["denoising_strength"] = mode == GenerationMode.Txt2Img ? null : s.DenoisingStrength,
            ["sd_model_name"] = model.Name, ["sd_model_hash"] = null, ["job_timestamp"] = job.Created.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture),
            ["index_of_first_image"] = 0, ["infotexts"] = infotexts, ["styles"] = new List<string>(), ["clip_skip"] = 1,
            ["is_using_inpainting_conditioning"] = false, ["version"] = "DiffuSharp",
            ["job_id"] = job.Id, ["interrupted"] = job.State == JobState.Cancelled, ["warnings"] = result.Warnings,
        };
        var images = r.SendImages ? result.Images.Select(x => Convert.ToBase64String(x.Png)).ToList() : [];
        var parameters = JsonSerializer.SerializeToElement(r, r.GetType());
        return Results.Json(new SdImagesResponse(images, parameters, JsonSerializer.Serialize(info)));
    }

    static void Refuse(bool asked, string field)
    {
        if (asked) throw new HttpError(400, $"{field} is not supported by DiffuSharp");
    }

    static SdProgressResponse Progress(ServerState state, bool skipImage)
    {
        var job = state.Runner.Current;
        if (job is null)
            return new SdProgressResponse(0, 0, new SdProgressState(false, false, false, "", 0, "0", 0, 0, 0), null, null);
        var p = job.Progress;
        int total = Math.Max(1, p.Steps * p.Batches);
        double progress = Math.Clamp((p.Batch * p.Steps + p.Step) / (double)total, 0, 1);
        string? image = skipImage || job.Preview is not { } png ? null : Convert.ToBase64String(png);
        var st = new SdProgressState(false, job.Cancellation.IsCancellationRequested, false, job.Id, p.Batches,
            job.Created.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture), p.Batch, p.Step, p.Steps);
        return new SdProgressResponse(progress, Math.Round(p.EtaSeconds, 3), st, image, null);
    }
}

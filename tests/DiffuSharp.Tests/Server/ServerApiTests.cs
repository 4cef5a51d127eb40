// The HTTP API in process (TestServer): every endpoint of the page's API and of the sd-webui subset, with the field
// names and types sd-webui's clients send, and the bad requests the server must refuse with a 4xx and a message while
// it keeps serving.
using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json;
using DiffuSharp.Imaging;
using DiffuSharp.Server;
using Xunit;

namespace DiffuSharp.Tests.Server;

[Collection("Parallelism")]
public sealed class ServerApiTests
{
    /// <summary>What sd-webui's Python client (webuiapi) sends for txt2img, field for field.</summary>
    public static Dictionary<string, object?> WebuiClientBody(string prompt, int steps, long seed, int batch = 1, int nIter = 1, string sampler = "Euler a") => new()
    {
        ["enable_hr"] = false, ["denoising_strength"] = 0.7, ["firstphase_width"] = 0, ["firstphase_height"] = 0, ["hr_scale"] = 2,
        ["hr_upscaler"] = "Latent", ["hr_second_pass_steps"] = 0, ["hr_resize_x"] = 0, ["hr_resize_y"] = 0, ["prompt"] = prompt,
        ["styles"] = Array.Empty<string>(), ["seed"] = seed, ["subseed"] = -1, ["subseed_strength"] = 0.0, ["seed_resize_from_h"] = 0,
        ["seed_resize_from_w"] = 0, ["sampler_name"] = sampler, ["batch_size"] = batch, ["n_iter"] = nIter, ["steps"] = steps,
        ["cfg_scale"] = 7.0, ["width"] = 512, ["height"] = 512, ["restore_faces"] = false, ["tiling"] = false,
        ["do_not_save_samples"] = false, ["do_not_save_grid"] = false, ["negative_prompt"] = "", ["eta"] = 1.0, ["s_churn"] = 0,
        ["s_tmax"] = 0, ["s_tmin"] = 0, ["s_noise"] = 1, ["override_settings"] = new Dictionary<string, object>(),
        ["override_settings_restore_afterwards"] = true, ["script_args"] = Array.Empty<object>(), ["script_name"] = null,
        ["send_images"] = true, ["save_images"] = false, ["alwayson_scripts"] = new Dictionary<string, object>(), ["sampler_index"] = sampler,
    };

    [Fact]
    public async Task Model_and_sampler_lists_carry_sd_webui_fields()
    {
        await using var s = await ServerHarness.StartAsync();
        var models = await Json(await s.Client.GetAsync("/api/models"));
        var names = models.EnumerateArray().Select(m => m.GetProperty("name").GetString()).ToList();
        Assert.Equal(["fashion-mnist", "tiny_sd", "tiny_sd_controlnet"], names);                 // not-a-model/ is skipped
        var fm = models[0];
        Assert.Equal("pixel", fm.GetProperty("kind").GetString());
        Assert.Equal("Sneaker", fm.GetProperty("classes")[7].GetString());
        Assert.Equal(1, models[2].GetProperty("controlnets").GetInt32());
        Assert.Equal(64, models[1].GetProperty("width").GetInt32());

        var sdModels = await Json(await s.Client.GetAsync("/sdapi/v1/sd-models"));
        foreach (var key in new[] { "title", "model_name", "hash", "sha256", "filename", "config" })
            Assert.True(sdModels[0].TryGetProperty(key, out _), key);
        Assert.DoesNotContain(s.Root, sdModels.GetRawText());                                   // no server paths leak

        var samplers = await Json(await s.Client.GetAsync("/sdapi/v1/samplers"));
        var sn = samplers.EnumerateArray().Select(x => x.GetProperty("name").GetString()).ToList();
        Assert.Contains("Euler a", sn);
        Assert.Contains("DPM++ 2M Karras", sn);
        Assert.Equal(JsonValueKind.Array, samplers[0].GetProperty("aliases").ValueKind);
        Assert.Equal(JsonValueKind.Object, samplers[0].GetProperty("options").ValueKind);
    }

    [Fact]
    public async Task Txt2img_on_the_pixel_model_takes_the_class_from_the_prompt_and_reproduces_by_seed()
    {
        await using var s = await ServerHarness.StartAsync();
        var r = await s.PostJson("/sdapi/v1/txt2img", WebuiClientBody("sneaker", steps: 4, seed: 11, batch: 2, nIter: 2, sampler: "DDIM"));
        var body = await Json(r);
        var images = body.GetProperty("images").EnumerateArray().Select(i => Convert.FromBase64String(i.GetString()!)).ToList();
        Assert.Equal(4, images.Count);                                                           // batch_size × n_iter
        var info = JsonDocument.Parse(body.GetProperty("info").GetString()!).RootElement;
        Assert.Equal([11L, 12, 13, 14], info.GetProperty("all_seeds").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("fashion-mnist", info.GetProperty("sd_model_name").GetString());
        Assert.Equal(28, info.GetProperty("width").GetInt32());                                  // the model's own size
        Assert.Equal("sneaker", body.GetProperty("parameters").GetProperty("prompt").GetString());
        string p = PngText(images[2], "parameters")!;
        Assert.Equal("Sneaker\nSteps: 4, Sampler: DDIM, CFG scale: 1, Seed: 13, Size: 28x28, Model: fashion-mnist", p);
        Assert.Equal(info.GetProperty("infotexts")[2].GetString(), p);
        Assert.Contains("cfg_scale 7 ignored", info.GetProperty("warnings")[0].GetString());
        var img = Png.Decode(images[0]);
        Assert.Equal((28, 28, 1), (img.Width, img.Height, img.Channels));

        // seed 13 alone draws the third image again, bit for bit
        var again = await Json(await s.PostJson("/sdapi/v1/txt2img", WebuiClientBody("7", steps: 4, seed: 13, sampler: "DDIM")));
        Assert.Equal(images[2], Convert.FromBase64String(again.GetProperty("images")[0].GetString()!));
    }

    [Fact]
    public async Task Txt2img_img2img_and_inpaint_on_a_pipeline()
    {
        await using var s = await ServerHarness.StartAsync();
        var body = WebuiClientBody("a red square", steps: 3, seed: 5, sampler: "DPM++ 2M");
        body["width"] = 32; body["height"] = 24; body["negative_prompt"] = "blurry";
        body["override_settings"] = new Dictionary<string, object> { ["sd_model_checkpoint"] = "tiny_sd [0123abcd]" };
        var t2i = await Json(await s.PostJson("/sdapi/v1/txt2img", body));
        var png = Convert.FromBase64String(t2i.GetProperty("images")[0].GetString()!);
        var img = Png.Decode(png);
        Assert.Equal((32, 24, 3), (img.Width, img.Height, img.Channels));
        Assert.Equal("a red square\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M, CFG scale: 7, Seed: 5, Size: 32x24, Model: tiny_sd", PngText(png, "parameters"));

        var init = Convert.ToBase64String(Png.Encode(Image8.Blank(32, 32, 3)));
        var maskImg = Image8.Blank(32, 32, 1);
        for (int i = 0; i < 16 * 32; i++) maskImg.Pixels[i] = 255;                              // repaint the top half
        var i2i = new Dictionary<string, object?>(WebuiClientBody("a cat", steps: 4, seed: 2, sampler: "DDIM"))
        {
            ["init_images"] = new[] { "data:image/png;base64," + init }, ["denoising_strength"] = 0.5,
            ["override_settings"] = new Dictionary<string, object> { ["sd_model_checkpoint"] = "tiny_sd" },
        };
        var r1 = await Json(await s.PostJson("/sdapi/v1/img2img", i2i));
        Assert.Equal((32, 32), Size(r1));
        Assert.Contains("Denoising strength: 0.5", JsonDocument.Parse(r1.GetProperty("info").GetString()!).RootElement.GetProperty("infotexts")[0].GetString());
        i2i["mask"] = Convert.ToBase64String(Png.Encode(maskImg));
        var r2 = await Json(await s.PostJson("/sdapi/v1/img2img", i2i));
        Assert.Equal((32, 32), Size(r2));
        Assert.NotEqual(r1.GetProperty("images")[0].GetString(), r2.GetProperty("images")[0].GetString());
    }

    [Fact]
    public async Task Page_jobs_stream_previews_and_land_in_the_gallery_with_a_trajectory()
    {
        await using var s = await ServerHarness.StartAsync();
        var accepted = await Json(await s.PostJson("/api/jobs", new { model = "fashion-mnist", prompt = "Bag", steps = 6, seed = 3, trajectory = true, sampler_name = "dpm++2m" }), HttpStatusCode.Accepted);
        string id = accepted.GetProperty("id").GetString()!;
        var (progress, previews, done) = await ReadEvents(s.Client, id);
        Assert.True(previews >= 3, $"{previews} previews");
        Assert.True(progress >= previews);
        Assert.Equal("done", done.GetProperty("state").GetString());
        Assert.Equal(6, done.GetProperty("steps").GetInt32());
        var image = done.GetProperty("images")[0];
        var png = await s.Client.GetByteArrayAsync(image.GetProperty("url").GetString());
        Assert.StartsWith("Bag\nSteps: 6, Sampler: DPM++ 2M,", PngText(png, "parameters"));
        var strip = Png.Decode(await s.Client.GetByteArrayAsync(done.GetProperty("trajectory").GetString()));
        Assert.Equal(2 * (28 + 2) + 2, strip.Height);                                            // x_t row and x0 row
        var gallery = await Json(await s.Client.GetAsync("/api/gallery"));
        Assert.Equal(image.GetProperty("id").GetString(), gallery[0].GetProperty("id").GetString());
        var status = await Json(await s.Client.GetAsync($"/api/jobs/{id}"));
        Assert.Equal("done", status.GetProperty("state").GetString());

        // interpolation: mix 0 is seed 3's image, mix 1 is seed 9's
        async Task<byte[]> Draw(object body)
        {
            var a = await Json(await s.PostJson("/api/jobs", body), HttpStatusCode.Accepted);
            var (_, _, d) = await ReadEvents(s.Client, a.GetProperty("id").GetString()!);
            return Png.Decode(await s.Client.GetByteArrayAsync(d.GetProperty("images")[0].GetProperty("url").GetString())).Pixels;
        }
        var seed3 = await Draw(new { model = "fashion-mnist", prompt = "Bag", steps = 3, seed = 3 });
        var seed9 = await Draw(new { model = "fashion-mnist", prompt = "Bag", steps = 3, seed = 9 });
        Assert.Equal(seed9, await Draw(new { model = "fashion-mnist", prompt = "Bag", steps = 3, seed = 3, seed2 = 9, mix = 1.0 }));
        var half = await Draw(new { model = "fashion-mnist", prompt = "Bag", steps = 3, seed = 3, seed2 = 9, mix = 0.5 });
        Assert.NotEqual(seed3, half);
        Assert.NotEqual(seed9, half);
    }

    [Fact]
    public async Task Progress_reports_the_running_job_and_interrupt_stops_it()
    {
        await using var s = await ServerHarness.StartAsync();
        var idle = await Json(await s.Client.GetAsync("/sdapi/v1/progress"));
        Assert.Equal(0, idle.GetProperty("progress").GetDouble());
        var run = s.PostJson("/sdapi/v1/txt2img", WebuiClientBody("dress", steps: 150, seed: 1, nIter: 8, sampler: "DDIM"));
        JsonElement p = default;
        for (int i = 0; i < 600; i++)
        {
            p = await Json(await s.Client.GetAsync("/sdapi/v1/progress?skip_current_image=false"));
            if (p.GetProperty("state").GetProperty("sampling_step").GetInt32() >= 2 && p.GetProperty("current_image").ValueKind == JsonValueKind.String) break;
            await Task.Delay(50);
        }
        Assert.InRange(p.GetProperty("progress").GetDouble(), 1e-9, 0.5);
        Assert.True(p.GetProperty("eta_relative").GetDouble() > 0);
        Assert.Equal(150, p.GetProperty("state").GetProperty("sampling_steps").GetInt32());
        Assert.Equal(8, p.GetProperty("state").GetProperty("job_count").GetInt32());
        Png.Decode(Convert.FromBase64String(p.GetProperty("current_image").GetString()!));
        var skip = await Json(await s.Client.GetAsync("/sdapi/v1/progress?skip_current_image=true"));
        Assert.Equal(JsonValueKind.Null, skip.GetProperty("current_image").ValueKind);

        Assert.Equal(HttpStatusCode.OK, (await s.Client.PostAsync("/sdapi/v1/interrupt", null)).StatusCode);
        var result = await Json(await run);
        var info = JsonDocument.Parse(result.GetProperty("info").GetString()!).RootElement;
        Assert.True(info.GetProperty("interrupted").GetBoolean());
        Assert.True(result.GetProperty("images").GetArrayLength() < 8);
        Assert.Null(s.State.Runner.Current);
        Assert.Equal(1, s.State.Runner.Cancelled);
    }

    [Fact]
    public async Task A_client_that_disconnects_frees_its_job_and_cancel_stops_a_page_job()
    {
        await using var s = await ServerHarness.StartAsync();
        using (var cts = new CancellationTokenSource())
        {
            var run = s.Client.PostAsJsonAsyncSafe("/sdapi/v1/txt2img", WebuiClientBody("coat", steps: 150, seed: 1, nIter: 8, sampler: "DDIM"), cts.Token);
            await WaitFor(() => s.State.Runner.Current?.Progress.Step >= 1);
            cts.Cancel();                                                                        // the client goes away
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
            await WaitFor(() => s.State.Runner.Current is null);
            Assert.Equal(1, s.State.Runner.Cancelled);
        }
        // the page's event stream going away cancels its job too
        var watched = await Json(await s.PostJson("/api/jobs", new { model = "fashion-mnist", steps = 150, n_iter = 8 }), HttpStatusCode.Accepted);
        string watchedId = watched.GetProperty("id").GetString()!;
        using (var cts = new CancellationTokenSource())
        {
            var stream = await s.Client.GetStreamAsync($"/api/jobs/{watchedId}/events", cts.Token);
            var reader = new StreamReader(stream);
            while (await reader.ReadLineAsync(cts.Token) is { } line && !line.Contains("\"step\":2")) { }
            cts.Cancel();
            stream.Dispose();
        }
        await WaitFor(() => s.State.Runner.Find(watchedId)!.State == JobState.Cancelled);
        Assert.Equal(2, s.State.Runner.Cancelled);

        var accepted = await Json(await s.PostJson("/api/jobs", new { model = "fashion-mnist", steps = 150, n_iter = 8 }), HttpStatusCode.Accepted);
        string id = accepted.GetProperty("id").GetString()!;
        await WaitFor(() => s.State.Runner.Current?.Progress.Step >= 1);
        var cancelled = await Json(await s.Client.PostAsync($"/api/jobs/{id}/cancel", null));
        await WaitFor(() => s.State.Runner.Find(id)!.State == JobState.Cancelled);
        Assert.Equal(3, s.State.Runner.Cancelled);
    }

    [Fact]
    public async Task A_full_queue_answers_429_and_the_server_goes_on()
    {
        await using var s = await ServerHarness.StartAsync(limits: new ServerLimits { QueueCapacity = 1 });
        var first = await Json(await s.PostJson("/api/jobs", new { model = "fashion-mnist", steps = 150, n_iter = 8 }), HttpStatusCode.Accepted);
        await WaitFor(() => s.State.Runner.Current is not null);
        await Json(await s.PostJson("/api/jobs", new { model = "fashion-mnist", steps = 2 }), HttpStatusCode.Accepted);   // waits
        var full = await s.PostJson("/sdapi/v1/txt2img", WebuiClientBody("", 2, 1, sampler: "DDIM"));
        Assert.Equal((HttpStatusCode)429, full.StatusCode);
        Assert.Contains("queue is full", (await Json(full, (HttpStatusCode)429)).GetProperty("detail").GetString());
        await s.Client.PostAsync("/sdapi/v1/interrupt", null);
        await WaitFor(() => s.State.Runner.Completed == 1);                                   // the waiting job ran
        await Json(await s.PostJson("/sdapi/v1/txt2img", WebuiClientBody("", 2, 1, sampler: "DDIM")));
    }

    [Fact]
    public async Task Options_pick_the_default_model_of_sd_webui_requests()
    {
        await using var s = await ServerHarness.StartAsync();
        Assert.Equal("fashion-mnist", (await Json(await s.Client.GetAsync("/sdapi/v1/options"))).GetProperty("sd_model_checkpoint").GetString());
        await Json(await s.PostJson("/sdapi/v1/options", new Dictionary<string, string> { ["sd_model_checkpoint"] = "tiny_sd" }));
        var r = await Json(await s.PostJson("/sdapi/v1/txt2img", WebuiClientBody("a dog", 2, 1, sampler: "Euler")));
        Assert.Equal("tiny_sd", JsonDocument.Parse(r.GetProperty("info").GetString()!).RootElement.GetProperty("sd_model_name").GetString());
    }

    [Fact]
    public async Task Training_runs_page_assets_edges_and_the_openapi_document()
    {
        await using var s = await ServerHarness.StartAsync();
        var runs = await Json(await s.Client.GetAsync("/api/runs/"));
        Assert.Equal("tiny-run", runs[0].GetProperty("name").GetString());
        Assert.Equal(200, runs[0].GetProperty("last_step").GetInt64());
        var run = await Json(await s.Client.GetAsync("/api/runs/tiny-run"));
        Assert.Equal(4, run.GetProperty("log").GetArrayLength());                               // the half-written line is skipped
        Assert.Equal(0.3 / 4, run.GetProperty("log")[3].GetProperty("loss_q0").GetDouble(), 12);
        Assert.Equal(2.0, run.GetProperty("steps_per_second").GetDouble(), 9);                  // 128 samples/s at batch 64
        Assert.Equal((1000 - 200) / 2.0, run.GetProperty("eta_seconds").GetDouble(), 9);
        var sample = run.GetProperty("samples")[1];
        Assert.Equal(200, sample.GetProperty("step").GetInt64());
        Png.Decode(await s.Client.GetByteArrayAsync(sample.GetProperty("url").GetString()));
        await Json(await s.Client.GetAsync("/api/runs/..%2F..%2Fetc"), HttpStatusCode.NotFound);
        await Json(await s.Client.GetAsync("/api/runs/tiny-run/samples/..%2Flog.jsonl"), HttpStatusCode.NotFound);
        await Json(await s.Client.GetAsync("/api/runs/tiny-run/samples/step_1.png"), HttpStatusCode.NotFound);

        var html = await s.Client.GetStringAsync("/");
        Assert.Contains("<script src=\"/static/app.js\">", html);
        Assert.Contains("EventSource", await s.Client.GetStringAsync("/static/app.js"));
        var css = await s.Client.GetAsync("/static/style.css");
        Assert.Equal("text/css", css.Content.Headers.ContentType!.MediaType);
        await Json(await s.Client.GetAsync("/static/..%2F..%2Fsecret"), HttpStatusCode.NotFound);

        var square = Image8.Blank(40, 40, 3);
        for (int y = 10; y < 30; y++) for (int x = 10; x < 30; x++) for (int c = 0; c < 3; c++) square.Pixels[(y * 40 + x) * 3 + c] = 255;
        var edges = await Json(await s.PostJson("/api/edges", new { image = Convert.ToBase64String(Png.Encode(square)), width = 32, height = 32 }));
        var e = Png.Decode(Convert.FromBase64String(edges.GetProperty("image").GetString()!));
        Assert.Equal((32, 32), (e.Width, e.Height));
        Assert.Contains(e.Pixels, b => b == 255);

        var doc = await Json(await s.Client.GetAsync("/openapi/v1.json"));
        var paths = doc.GetProperty("paths");
        foreach (var path in new[] { "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/progress", "/sdapi/v1/interrupt", "/sdapi/v1/samplers", "/sdapi/v1/sd-models", "/api/jobs", "/api/runs/{name}" })
            Assert.True(paths.TryGetProperty(path, out _), path);
        Assert.Contains("cfg_scale", doc.GetRawText());
    }

    // ---- helpers

    internal static async Task<JsonElement> Json(HttpResponseMessage r, HttpStatusCode expected = HttpStatusCode.OK)
    {
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"HTTP {(int)r.StatusCode}, expected {(int)expected}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    internal static async Task<(int Progress, int Previews, JsonElement Done)> ReadEvents(HttpClient client, string id)
    {
        using var stream = await client.GetStreamAsync($"/api/jobs/{id}/events");
        using var reader = new StreamReader(stream);
        string? ev = null;
        int progress = 0, previews = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) ev = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                var data = JsonDocument.Parse(line[6..]).RootElement.Clone();
                if (ev == "done") return (progress, previews, data);
                progress++;
                if (data.GetProperty("preview").ValueKind == JsonValueKind.String) previews++;
            }
        }
        throw new InvalidOperationException("the event stream ended without a done event");
    }

    internal static async Task WaitFor(Func<bool> condition, int seconds = 120)
    {
        var end = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > end) throw new TimeoutException("condition not met in time");
            await Task.Delay(20);
        }
    }

    static (int, int) Size(JsonElement r)
    {
        var img = Png.Decode(Convert.FromBase64String(r.GetProperty("images")[0].GetString()!));
        return (img.Width, img.Height);
    }

    /// <summary>The text of a PNG's tEXt chunk <paramref name="keyword"/>.</summary>
    internal static string? PngText(byte[] png, string keyword)
    {
        for (int at = 8; at + 12 <= png.Length;)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at));
            string type = Encoding.ASCII.GetString(png, at + 4, 4);
            if (type == "tEXt")
            {
                var data = png.AsSpan(at + 8, len);
                int zero = data.IndexOf((byte)0);
                if (Encoding.Latin1.GetString(data[..zero]) == keyword) return Encoding.Latin1.GetString(data[(zero + 1)..]);
            }
            at += 12 + len;
        }
        return null;
    }
}

internal static class HttpClientExtensions
{
    public static Task<HttpResponseMessage> PostAsJsonAsyncSafe(this HttpClient client, string url, object body, CancellationToken ct)
        => System.Net.Http.Json.HttpClientJsonExtensions.PostAsJsonAsync(client, url, body, ct);
}


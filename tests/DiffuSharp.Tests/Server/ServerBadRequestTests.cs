// Bad requests: malformed JSON, wrong types, unknown sampler or model, steps 0 or 10⁶, paths as model names, non-PNG
// or oversized images, a 100 MB upload: each a 4xx with {"error", "detail"} naming the problem, nothing queued, and
// the server still serving.
using System.Buffers.Binary;
using System.Net;
using System.Text;
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Server;

[Collection("Parallelism")]
public sealed class ServerBadRequestTests
{
    public static IEnumerable<object[]> BadRequests() =>
    [
        ["/sdapi/v1/txt2img", "{\"prompt\": \"sneaker\", \"steps\": ", 400, "malformed JSON"],
        ["/sdapi/v1/txt2img", "[1, 2]", 400, "malformed JSON"],
        ["/sdapi/v1/txt2img", "", 400, "empty"],
        ["/sdapi/v1/txt2img", "{\"steps\": \"twenty\"}", 400, "$.steps"],
        ["/sdapi/v1/txt2img", "{\"steps\": 0}", 400, "steps must be between 1 and 150, got 0"],
        ["/sdapi/v1/txt2img", "{\"steps\": 1000000}", 400, "steps must be between 1 and 150, got 1000000"],
        ["/sdapi/v1/txt2img", "{\"steps\": 1e30}", 400, "$.steps"],
        ["/sdapi/v1/txt2img", "{\"batch_size\": 1000}", 400, "batch_size must be between 1 and 8"],
        ["/sdapi/v1/txt2img", "{\"sampler_name\": \"Euler b\"}", 400, "unknown sampler 'Euler b'"],
        ["/sdapi/v1/txt2img", "{\"prompt\": \"spaceship\"}", 400, "class name (T-shirt/top, Trouser"],
        ["/sdapi/v1/txt2img", "{\"override_settings\": {\"sd_model_checkpoint\": \"../../etc/passwd\"}}", 400, "unknown model '../../etc/passwd'"],
        ["/sdapi/v1/txt2img", "{\"override_settings\": {\"sd_model_checkpoint\": \"/etc\"}}", 400, "unknown model '/etc'"],
        ["/sdapi/v1/txt2img", "{\"override_settings\": {\"sd_model_checkpoint\": \"tiny_sd\"}, \"width\": 100000}", 400, "width and height must be multiples of 8 between 8 and 1024"],
        ["/sdapi/v1/txt2img", "{\"override_settings\": {\"sd_model_checkpoint\": \"tiny_sd\"}, \"width\": 30}", 400, "got 30x64"],   // no height: the model's own (tiny_sd: 64)
        ["/sdapi/v1/txt2img", "{\"enable_hr\": true}", 400, "enable_hr"],
        ["/sdapi/v1/txt2img", "{\"cfg_scale\": -1}", 400, "cfg_scale"],
        ["/sdapi/v1/txt2img", "{\"seed\": -5}", 400, "seed"],
        ["/sdapi/v1/txt2img", "{\"negative_prompt\": \"ugly\"}", 400, "negative_prompt applies to text-to-image pipelines"],
        ["/sdapi/v1/img2img", "{\"init_images\": [\"aGVsbG8=\"], \"override_settings\": {\"sd_model_checkpoint\": \"tiny_sd\"}}", 400, "not a PNG"],
        ["/sdapi/v1/img2img", "{\"init_images\": [\"%%%\"]}", 400, "not valid base64"],
        ["/sdapi/v1/img2img", "{\"init_images\": []}", 400, "init_images"],
        ["/sdapi/v1/img2img", "{\"init_images\": [\"" + HugePngHeader() + "\"]}", 400, "the limit is 1048576 pixels"],
        ["/sdapi/v1/options", "{\"sd_model_checkpoint\": \"../models\"}", 400, "unknown model"],
        ["/api/jobs", "{\"model\": \"../../etc/passwd\"}", 400, "unknown model"],
        ["/api/jobs", "{\"mode\": \"outpaint\"}", 400, "mode must be"],
        ["/api/jobs", "{\"model\": \"tiny_sd\", \"mode\": \"inpaint\"}", 400, "needs an init image"],
        ["/api/jobs", "{\"model\": \"fashion-mnist\", \"mode\": \"img2img\"}", 400, "pixel model"],
        ["/api/jobs", "{\"model\": \"tiny_sd\", \"control_image\": \"" + SmallPng() + "\"}", 400, "has none"],
        ["/api/edges", "{}", 400, "image"],
    ];

    [Theory, MemberData(nameof(BadRequests))]
    public async Task Bad_requests_get_a_4xx_with_a_message_and_the_server_goes_on(string url, string body, int status, string message)
    {
        await using var s = await ServerHarness.StartAsync();
        var r = await s.PostRaw(url, body);
        var e = await ServerApiTests.Json(r, (HttpStatusCode)status);
        Assert.Contains(message, e.GetProperty("detail").GetString());
        Assert.Equal(0, s.State.Runner.Completed + s.State.Runner.Queued);
        Assert.Equal(HttpStatusCode.OK, (await s.Client.GetAsync("/api/models")).StatusCode);
    }

    [Fact]
    public async Task A_100_MB_upload_and_a_long_prompt_are_refused()
    {
        await using var s = await ServerHarness.StartAsync();
        var big = new ByteArrayContent(new byte[100 << 20]);
        big.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var r = await s.Client.PostAsync("/sdapi/v1/img2img", big);
        Assert.Contains("the limit is 16777216 bytes", (await ServerApiTests.Json(r, HttpStatusCode.RequestEntityTooLarge)).GetProperty("detail").GetString());
        var longPrompt = await s.PostJson("/sdapi/v1/txt2img", new { prompt = new string('a', 5000) });
        Assert.Contains("prompt is 5000 characters", (await ServerApiTests.Json(longPrompt, HttpStatusCode.BadRequest)).GetProperty("detail").GetString());
        var wrongType = await s.Client.PostAsync("/sdapi/v1/txt2img", new StringContent("steps=20", Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Contains("Content-Type: application/json", (await ServerApiTests.Json(wrongType, HttpStatusCode.UnsupportedMediaType)).GetProperty("detail").GetString());
        Assert.Contains("no job", (await ServerApiTests.Json(await s.Client.GetAsync("/api/jobs/nope"), HttpStatusCode.NotFound)).GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.OK, (await s.Client.GetAsync("/api/models")).StatusCode);
    }

    /// <summary>A PNG signature and IHDR that claim 20000×20000 (the server refuses it before decoding).</summary>
    static string HugePngHeader()
    {
        var b = new byte[33];
        new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R' }.CopyTo(b, 0);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), 20000);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), 20000);
        return Convert.ToBase64String(b);
    }

    static string SmallPng() => Convert.ToBase64String(Png.Encode(Image8.Blank(64, 64, 3)));
}

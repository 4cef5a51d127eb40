// Several ControlNets by name through the server: a pipeline folder with controlnet-a/ and controlnet-b/ beside its
// components (Pipelines/TwoControlNetPipeline) lists both; a job with both nets differs from one with one, a net picked by
// name is that net, the older single control_image is the first net, sd-webui-controlnet's alwayson_scripts units give
// the page's image, and unknown names or wrong sizes are 400s naming them.
using System.Net;
using System.Text.Json;
using DiffuSharp.Imaging;
using DiffuSharp.Tests.Pipelines;
using Xunit;

namespace DiffuSharp.Tests.Server;

[Collection("Parallelism")]
public sealed class ServerControlNetNamesTests
{
    static Task<ServerHarness> Start() => ServerHarness.StartAsync(addModels: models => TwoControlNetPipeline.Make(models));

    /// <summary>A 32×32 control image: a white diagonal (or anti-diagonal) line on black.</summary>
    static string Line(bool anti = false, int size = 32)
    {
        var img = Image8.Blank(size, size, 3);
        for (int i = 0; i < size; i++) for (int c = 0; c < 3; c++) img.Pixels[(i * size + (anti ? size - 1 - i : i)) * 3 + c] = 255;
        return Convert.ToBase64String(Png.Encode(img));
    }

    static async Task<(byte[] Pixels, string Parameters)> Draw(ServerHarness s, Dictionary<string, object?> extra)
    {
        var body = new Dictionary<string, object?> { ["model"] = "two_nets", ["prompt"] = "a line", ["steps"] = 3, ["seed"] = 4, ["width"] = 32, ["height"] = 32 };
        foreach (var (k, v) in extra) body[k] = v;
        var a = await ServerApiTests.Json(await s.PostJson("/api/jobs", body), HttpStatusCode.Accepted);
        var (_, _, done) = await ServerApiTests.ReadEvents(s.Client, a.GetProperty("id").GetString()!);
        Assert.True(done.GetProperty("state").GetString() == "done", done.ToString());
        var image = done.GetProperty("images")[0];
        return (Png.Decode(await s.Client.GetByteArrayAsync(image.GetProperty("url").GetString())).Pixels, image.GetProperty("parameters").GetString()!);
    }

    static object Net(string name, string image, double scale) => new Dictionary<string, object> { ["name"] = name, ["image"] = image, ["scale"] = scale };

    [Fact]
    public async Task The_model_list_names_the_nets_beside_a_pipeline()
    {
        await using var s = await Start();
        var models = (await ServerApiTests.Json(await s.Client.GetAsync("/api/models"))).EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        string[] Names(string model) => [.. models[model].GetProperty("controlnet_names").EnumerateArray().Select(n => n.GetString()!)];
        Assert.Equal(["a", "b"], Names("two_nets"));
        Assert.Equal(2, models["two_nets"].GetProperty("controlnets").GetInt32());
        Assert.Equal(["controlnet"], Names("tiny_sd_controlnet"));
        Assert.Equal(1, models["tiny_sd_controlnet"].GetProperty("controlnets").GetInt32());
        Assert.Empty(Names("tiny_sd"));
        Assert.Empty(Names("fashion-mnist"));
    }

    [Fact]
    public async Task Two_nets_at_once_differ_from_one_and_each_name_picks_its_net()
    {
        await using var s = await Start();
        string line = Line(), anti = Line(anti: true);
        var (a, pa) = await Draw(s, new() { ["controlnets"] = new[] { Net("a", line, 2) } });
        var (b, _) = await Draw(s, new() { ["controlnets"] = new[] { Net("b", line, 2) } });
        var (both, pboth) = await Draw(s, new() { ["controlnets"] = new[] { Net("a", line, 2), Net("controlnet-b", anti, 2) } });
        var (first, _) = await Draw(s, new() { ["control_image"] = line, ["control_scale"] = 2 });
        Assert.NotEqual(a, b);                                        // the same image through another net: another result
        Assert.NotEqual(a, both);
        Assert.NotEqual(b, both);
        Assert.Equal(a, first);                                       // control_image alone: the first net (a)
        Assert.Contains("ControlNet 0: \"Module: none, Model: a, Weight: 2,", pa);
        Assert.Contains("ControlNet 0: \"Module: none, Model: a, Weight: 2,", pboth);
        Assert.Contains("ControlNet 1: \"Module: none, Model: b, Weight: 2,", pboth);
    }

    [Fact]
    public async Task Sd_webui_controlnet_units_give_the_pages_image()
    {
        await using var s = await Start();
        string line = Line(), anti = Line(anti: true);
        var (page, _) = await Draw(s, new() { ["controlnets"] = new[] { Net("b", line, 1.5), Net("a", anti, 0.5) } });
        // as sd-webui-controlnet's API clients send units: model with a hash, the older input_image, a disabled unit
        var units = new object[]
        {
            new Dictionary<string, object?> { ["enabled"] = true, ["module"] = "none", ["model"] = "b [8d3c2a1f]", ["weight"] = 1.5, ["input_image"] = line,
                ["resize_mode"] = "Crop and Resize", ["low_vram"] = false, ["processor_res"] = -1, ["threshold_a"] = -1, ["threshold_b"] = -1,
                ["guidance_start"] = 0.0, ["guidance_end"] = 1.0, ["control_mode"] = 0, ["pixel_perfect"] = false },
            new Dictionary<string, object?> { ["enabled"] = false, ["model"] = "nothing-of-ours", ["image"] = line },
            new Dictionary<string, object?> { ["model"] = "a", ["weight"] = 0.5, ["image"] = new Dictionary<string, object?> { ["image"] = anti, ["mask"] = null } },
        };
        var body = new Dictionary<string, object?>
        {
            ["prompt"] = "a line", ["steps"] = 3, ["seed"] = 4, ["width"] = 32, ["height"] = 32,
            ["override_settings"] = new Dictionary<string, object> { ["sd_model_checkpoint"] = "two_nets" },
            ["alwayson_scripts"] = new Dictionary<string, object> { ["ControlNet"] = new Dictionary<string, object> { ["args"] = units } },
        };
        var r = await ServerApiTests.Json(await s.PostJson("/sdapi/v1/txt2img", body));
        var png = Convert.FromBase64String(r.GetProperty("images")[0].GetString()!);
        Assert.Equal(page, Png.Decode(png).Pixels);
        var info = JsonDocument.Parse(r.GetProperty("info").GetString()!).RootElement;
        string infotext = info.GetProperty("infotexts")[0].GetString()!;
        Assert.Contains("ControlNet 0: \"Module: none, Model: b, Weight: 1.5,", infotext);
        Assert.Contains("ControlNet 1: \"Module: none, Model: a, Weight: 0.5,", infotext);
    }

    public static TheoryData<string, string, string> BadRequests()
    {
        string line = Line(), small = Line(size: 16);
        string Job(string controlnets) => "{\"model\": \"two_nets\", \"steps\": 2, \"width\": 32, \"height\": 32, \"controlnets\": " + controlnets + "}";
        string Sd(string unit) => "{\"steps\": 2, \"width\": 32, \"height\": 32, \"override_settings\": {\"sd_model_checkpoint\": \"two_nets\"}, " +
            "\"alwayson_scripts\": {\"controlnet\": {\"args\": [" + unit + "]}}}";
        return new()
        {
            { "/api/jobs", Job("[{\"name\": \"c\", \"image\": \"" + line + "\"}]"), "controlnets[0]: two_nets has no ControlNet 'c'; its ControlNets: a, b" },
            { "/api/jobs", Job("[{\"name\": \"a\", \"image\": \"" + line + "\"}, {\"name\": \"../controlnet-a\", \"image\": \"" + line + "\"}]"), "controlnets[1]: two_nets has no ControlNet '../controlnet-a'" },
            { "/api/jobs", Job("[{\"name\": \"b\", \"image\": \"" + small + "\"}]"), "controlnets[0] (b): the control image is 16x16, the output 32x32" },
            { "/api/jobs", Job("[{\"name\": \"b\"}]"), "controlnets[0].image" },
            { "/api/jobs", Job("[{\"image\": \"" + line + "\"}]"), "controlnets[0].name" },
            { "/api/jobs", Job("[{\"name\": \"a\", \"image\": \"" + line + "\", \"scale\": 9}]"), "controlnets[0] (a): the scale must be between 0 and 5" },
            { "/api/jobs", "{\"model\": \"two_nets\", \"control_image\": \"" + line + "\", \"controlnets\": [{\"name\": \"a\", \"image\": \"" + line + "\"}]}", "not both" },
            { "/api/jobs", "{\"model\": \"tiny_sd\", \"controlnets\": [{\"name\": \"a\", \"image\": \"" + line + "\"}]}", "tiny_sd has none" },
            { "/sdapi/v1/txt2img", Sd("{\"model\": \"c [0000]\", \"image\": \"" + line + "\"}"), "alwayson_scripts.controlnet.args[0]: two_nets has no ControlNet 'c'; its ControlNets: a, b" },
            { "/sdapi/v1/txt2img", Sd("{\"model\": \"a\", \"module\": \"depth_midas\", \"image\": \"" + line + "\"}"), "module: 'depth_midas' is not supported" },
            { "/sdapi/v1/txt2img", Sd("{\"model\": \"a\", \"image\": \"" + small + "\"}"), "the control image is 16x16, the output 32x32" },
            { "/sdapi/v1/txt2img", Sd("{\"model\": \"a\", \"control_mode\": 2, \"image\": \"" + line + "\"}"), "only Balanced" },
            { "/sdapi/v1/txt2img", Sd("{\"model\": \"None\", \"image\": \"" + line + "\"}"), "name the ControlNet" },
            { "/sdapi/v1/txt2img", "{\"alwayson_scripts\": {\"ADetailer\": {\"args\": []}}}", "alwayson_scripts.ADetailer is not supported" },
        };
    }

    [Theory, MemberData(nameof(BadRequests))]
    public async Task Unknown_names_and_wrong_sizes_are_400s_naming_them(string url, string body, string message)
    {
        await using var s = await Start();
        var e = await ServerApiTests.Json(await s.PostRaw(url, body), HttpStatusCode.BadRequest);
        Assert.Contains(message, e.GetProperty("detail").GetString());
        Assert.Equal(0, s.State.Runner.Completed + s.State.Runner.Queued);
    }

    [Fact]
    public async Task The_detector_makes_edges_or_a_silhouette()
    {
        await using var s = await Start();
        var picture = Image8.Blank(32, 32, 3);                                                   // a gray square on black
        for (int y = 8; y < 24; y++) for (int x = 8; x < 24; x++) for (int c = 0; c < 3; c++) picture.Pixels[(y * 32 + x) * 3 + c] = 160;
        string png = Convert.ToBase64String(Png.Encode(picture));
        async Task<Image8> Detect(string? mode)
        {
            var r = await ServerApiTests.Json(await s.PostJson("/api/edges", mode is null ? new { image = png } : new { image = png, mode }));
            return Png.Decode(Convert.FromBase64String(r.GetProperty("image").GetString()!));
        }
        var edges = await Detect(null);
        var silhouette = await Detect("silhouette");
        Assert.Equal(0, edges.Pixels[16 * 32 + 16]);                                            // inside the square: no edge
        Assert.Equal(255, silhouette.Pixels[16 * 32 + 16]);                                     // but inside the object
        Assert.Equal(16 * 16, silhouette.Pixels.Count(v => v == 255));
        Assert.Equal(0, silhouette.Pixels[2 * 32 + 2]);
        Assert.InRange(edges.Pixels.Count(v => v == 255), 40, 100);                             // the outline
        var bad = await ServerApiTests.Json(await s.PostJson("/api/edges", new { image = png, mode = "depth" }), HttpStatusCode.BadRequest);
        Assert.Contains("mode must be edges or silhouette", bad.GetProperty("detail").GetString());
    }
}

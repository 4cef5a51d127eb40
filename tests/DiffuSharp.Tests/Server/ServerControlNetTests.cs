// ControlNet through the page's API: a control image drawn as a PNG steers tiny_sd_controlnet (scale 0 vs 2 differ), in
// txt2img, img2img and inpaint.
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Server;
[Collection("Parallelism")]
public sealed class ServerControlNetTests
{
    [Fact]
    public async Task A_control_image_steers_a_controlnet_pipeline()
    {
        await using var s = await ServerHarness.StartAsync();
        var control = Image8.Blank(32, 32, 3);
        for (int i = 0; i < 32; i++) for (int c = 0; c < 3; c++) control.Pixels[(i * 32 + i) * 3 + c] = 255;   // a diagonal line
        string png = Convert.ToBase64String(Png.Encode(control));
        Task<(byte[] Pixels, string Parameters)> Draw(double scale) =>
            Generate(s, new { model = "tiny_sd_controlnet", prompt = "a line", steps = 3, seed = 4, width = 32, height = 32, control_image = png, control_scale = scale });
        var (off, _) = await Draw(0);
        var (on, parameters) = await Draw(2);
        Assert.Contains("ControlNet 0: \"Module: none, Model: controlnet, Weight: 2, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1", parameters);
        Assert.NotEqual(off, on);
    }

    [Theory]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    public async Task A_control_image_steers_img2img_and_inpaint_too(string mode)
    {
        await using var s = await ServerHarness.StartAsync();
        var control = Image8.Blank(32, 32, 3);
        for (int i = 0; i < 32; i++) for (int c = 0; c < 3; c++) control.Pixels[(i * 32 + 31 - i) * 3 + c] = 255;   // an anti-diagonal
        var init = Image8.Blank(32, 32, 3);
        for (int k = 0; k < init.Pixels.Length; k++) init.Pixels[k] = (byte)(k * 7 % 251);
        var mask = Image8.Blank(32, 32, 1);
        for (int y = 8; y < 24; y++) for (int x = 8; x < 24; x++) mask.Pixels[y * 32 + x] = 255;          // paint the middle
        string Png64(Image8 im) => Convert.ToBase64String(Png.Encode(im));
        Task<(byte[] Pixels, string Parameters)> Draw(double scale) => Generate(s, new
        {
            model = "tiny_sd_controlnet", mode, prompt = "a line", steps = 4, seed = 4, denoising_strength = 0.75,
            init_image = Png64(init), mask = mode == "inpaint" ? Png64(mask) : null,
            controlnets = new[] { new { name = "controlnet", image = Png64(control), scale } },
        });
        var (off, _) = await Draw(0);
        var (on, parameters) = await Draw(2);
        Assert.Contains("Denoising strength: 0.75, ControlNet 0: \"Module: none, Model: controlnet, Weight: 2", parameters);
        Assert.NotEqual(off, on);
    }

    /// <summary>Posts <paramref name="body"/> to /api/jobs, waits for it to finish, and returns its first image's pixels
    /// and parameters.</summary>
    static async Task<(byte[] Pixels, string Parameters)> Generate(ServerHarness s, object body)
    {
        var a = await ServerApiTests.Json(await s.PostJson("/api/jobs", body), System.Net.HttpStatusCode.Accepted);
        var (_, _, done) = await ServerApiTests.ReadEvents(s.Client, a.GetProperty("id").GetString()!);
        Assert.Equal("done", done.GetProperty("state").GetString());
        var image = done.GetProperty("images")[0];
        return (Png.Decode(await s.Client.GetByteArrayAsync(image.GetProperty("url").GetString())).Pixels, image.GetProperty("parameters").GetString()!);
    }
}

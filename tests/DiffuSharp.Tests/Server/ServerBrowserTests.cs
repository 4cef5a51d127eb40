// The page in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by Microsoft.Playwright) against
// the server on a loopback port. Generate and watch the preview change, cancel, reuse a gallery image's parameters,
// paint an inpainting mask, steer a pipeline with two ControlNets, open a training run's dashboard (and see it pick up a new log line). With
// DIFFUSHARP_SCREENSHOT=1 the generate test writes docs/serve.png, the README's screenshot.
using Microsoft.Playwright;
using Xunit;

namespace DiffuSharp.Tests.Server;

/// <summary>A fact that is skipped, saying why, where Chromium is not installed.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string Executable = "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Executable)) Skip = $"{Executable} is not installed: apt-get install chromium (.ci/run installs it)";
    }
}

[Collection("Browser")]
public sealed class ServerBrowserTests
{
    static async Task<(ServerHarness Server, IPlaywright Playwright, IBrowser Browser, IPage Page)> Open(Action<string>? addModels = null)
    {
        var server = await ServerHarness.StartAsync(loopback: true, addModels: addModels);
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumFactAttribute.Executable, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1200, Height = 860 } });
        page.SetDefaultTimeout(90_000);
        await page.GotoAsync(server.Address!);
        await page.WaitForSelectorAsync("#model option", new() { State = WaitForSelectorState.Attached });
        return (server, playwright, browser, page);
    }

    static async Task Close((ServerHarness Server, IPlaywright Playwright, IBrowser Browser, IPage Page) b)
    {
        await b.Browser.CloseAsync();
        b.Playwright.Dispose();
        await b.Server.DisposeAsync();
    }

    [ChromiumFact]
    public async Task Generate_shows_the_preview_change_and_the_gallery_reuses_parameters()
    {
        var b = await Open();
        try
        {
            var page = b.Page;
            await page.SelectOptionAsync("#model", "fashion-mnist");
            await page.SelectOptionAsync("#class", "Sneaker");
            await page.SelectOptionAsync("#sampler", "DDIM");
            await page.FillAsync("#steps", "40");       // long enough on a fast, idle machine for the page to see several previews
            await page.FillAsync("#seed", "42");
            await page.FillAsync("#batch", "4");
            await page.CheckAsync("#trajectory");
            // record every preview the page shows while the job runs (the data: URLs of the predicted x0)
            await page.EvaluateAsync(@"() => { window.seen = []; new MutationObserver(() => { const s = document.getElementById('preview').src;
                if (s.startsWith('data:') && window.seen[window.seen.length - 1] !== s) window.seen.push(s); })
                .observe(document.getElementById('preview'), { attributes: true, attributeFilter: ['src'] }); }");
            await page.ClickAsync("#generate");
            await page.WaitForSelectorAsync("body[data-last-state=done]");
            int distinct = await page.EvaluateAsync<int>("() => new Set(window.seen).size");
            Assert.True(distinct >= 3, $"the preview changed {distinct} times");
            Assert.StartsWith("done in", await page.TextContentAsync("#progress"));
            Assert.Equal(4, await page.Locator("#results img").CountAsync());
            Assert.False(await page.Locator("#trajectory-image").IsHiddenAsync());
            if (Environment.GetEnvironmentVariable("DIFFUSHARP_SCREENSHOT") == "1")
                await page.ScreenshotAsync(new() { Path = Path.Combine(TestPaths.RepoRoot, "docs", "serve.png") });

            // change the form, then click the third gallery image: its parameters come back
            await page.FillAsync("#steps", "3");
            await page.FillAsync("#seed", "7");
            await page.SelectOptionAsync("#class", "Bag");
            await page.SelectOptionAsync("#sampler", "Euler");
            await page.Locator("#gallery img").Nth(2).ClickAsync();
            await page.WaitForSelectorAsync("body[data-reused='1']");
            string parameters = (await page.Locator("#gallery img").Nth(2).GetAttributeAsync("data-parameters"))!;
            string seed = parameters.Split("Seed: ")[1].Split(',')[0];
            Assert.Equal("40", await page.InputValueAsync("#steps"));
            Assert.Equal(seed, await page.InputValueAsync("#seed"));
            Assert.Equal("Sneaker", await page.InputValueAsync("#class"));
            Assert.Equal("DDIM", await page.InputValueAsync("#sampler"));
            Assert.Equal("1", await page.InputValueAsync("#cfg"));
        }
        finally { await Close(b); }
    }

    [ChromiumFact]
    public async Task Cancel_stops_a_run()
    {
        var b = await Open();
        try
        {
            var page = b.Page;
            await page.FillAsync("#steps", "150");
            await page.FillAsync("#batch", "8");
            await page.ClickAsync("#generate");
            await page.WaitForFunctionAsync("() => +document.getElementById('preview').dataset.count >= 1");
            await page.ClickAsync("#cancel");
            await page.WaitForSelectorAsync("body[data-last-state=cancelled]");
            Assert.Equal("cancelled", await page.TextContentAsync("#progress"));
            Assert.Equal(1, b.Server.State.Runner.Cancelled);
            Assert.Null(b.Server.State.Runner.Current);
            Assert.False(await page.IsDisabledAsync("#generate"));
        }
        finally { await Close(b); }
    }

    [ChromiumFact]
    public async Task Paint_a_mask_and_inpaint_on_a_pipeline_then_steer_it_with_two_controlnets()
    {
        var b = await Open(models => Pipelines.TwoControlNetPipeline.Make(models));
        try
        {
            var page = b.Page;
            await page.SelectOptionAsync("#model", "tiny_sd");
            await page.SelectOptionAsync("#mode", "inpaint");
            await page.FillAsync("#prompt", "a cat");
            await page.FillAsync("#steps", "3");
            await page.FillAsync("#width", "32");
            await page.DispatchEventAsync("#width", "change");
            await page.FillAsync("#height", "32");
            await page.DispatchEventAsync("#height", "change");
            var box = (await page.Locator("#mask-canvas").BoundingBoxAsync())!;
            await page.Mouse.MoveAsync(box.X + 20, box.Y + 20);
            await page.Mouse.DownAsync();
            for (int i = 1; i <= 10; i++) await page.Mouse.MoveAsync(box.X + 20 + i * 12, box.Y + 20 + i * 8);
            await page.Mouse.UpAsync();
            int white = await page.EvaluateAsync<int>(@"() => { const c = document.getElementById('mask-canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] > 200) n++; return n; }");
            Assert.InRange(white, 20, 32 * 32 - 100);                                           // a stroke, not the whole canvas
            await page.ClickAsync("#generate");
            await page.WaitForSelectorAsync("body[data-last-state=done]");
            var img = page.Locator("#results img").First;
            Assert.Contains("Denoising strength: 0.75", await img.GetAttributeAsync("data-parameters"));
            Assert.Contains("Size: 32x32, Model: tiny_sd", await img.GetAttributeAsync("data-parameters"));

            // a pipeline with two ControlNets beside it: a row each; draw on a's canvas, make b's from a picture's silhouette
            await page.SelectOptionAsync("#model", "two_nets");
            await page.SelectOptionAsync("#mode", "txt2img");
            Assert.Equal(["a", "b"], await page.Locator(".control-row .control-name").AllTextContentsAsync());
            Assert.False(await page.Locator(".control-row[data-name=b] .control-canvas").IsVisibleAsync());       // until enabled
            await page.FillAsync("#steps", "3");
            await page.CheckAsync(".control-row[data-name=a] .use-control");
            var cbox = (await page.Locator(".control-row[data-name=a] .control-canvas").BoundingBoxAsync())!;
            await page.Mouse.MoveAsync(cbox.X + 10, cbox.Y + 10);
            await page.Mouse.DownAsync();
            for (int i = 1; i <= 10; i++) await page.Mouse.MoveAsync(cbox.X + 10 + i * 15, cbox.Y + 10 + i * 15);
            await page.Mouse.UpAsync();
            var picture = DiffuSharp.Imaging.Image8.Blank(40, 40, 3);                                               // a gray square on black
            for (int y = 10; y < 30; y++) for (int x = 10; x < 30; x++) for (int c = 0; c < 3; c++) picture.Pixels[(y * 40 + x) * 3 + c] = 150;
            string file = Path.Combine(b.Server.Root, "garment.png");
            DiffuSharp.Imaging.Png.Write(file, picture);
            await page.CheckAsync(".control-row[data-name=b] .use-control");
            Assert.True(await page.Locator(".control-row[data-name=b] .control-canvas").IsVisibleAsync());
            await page.SelectOptionAsync(".control-row[data-name=b] .control-detector", "silhouette");
            await page.SetInputFilesAsync(".control-row[data-name=b] .control-file", file);
            await page.WaitForFunctionAsync("() => document.querySelector('.control-row[data-name=b] .control-canvas').dataset.made === '1'");
            int filled = await page.EvaluateAsync<int>(@"() => { const c = document.querySelector('.control-row[data-name=b] .control-canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] > 200) n++; return n; }");
            Assert.InRange(filled, 700, 1400);                 // the square (half the picture's side) filled on the 64×64 canvas: about 32×32, not its outline
            await page.ClickAsync("#generate");
            await page.WaitForFunctionAsync("() => (document.querySelector('#results img')?.dataset.parameters || '').includes('ControlNet 1')");
            string parameters = (await page.Locator("#results img").First.GetAttributeAsync("data-parameters"))!;
            Assert.Contains("ControlNet 0: \"Module: none, Model: a, Weight: 1,", parameters);
            Assert.Contains("ControlNet 1: \"Module: none, Model: b, Weight: 1,", parameters);
            Assert.Contains("Model: two_nets", parameters);
        }
        finally { await Close(b); }
    }

    [ChromiumFact]
    public async Task The_dashboard_shows_a_run_and_picks_up_new_log_lines()
    {
        var b = await Open();
        try
        {
            var page = b.Page;
            await page.ClickAsync("#tab-dashboard");
            await page.WaitForSelectorAsync("#run-step");
            Assert.Equal("200", await page.TextContentAsync("#run-step"));
            Assert.Contains("2.00 steps/s", await page.TextContentAsync("#run-stats"));
            Assert.Equal(2, await page.Locator("#run-samples img").CountAsync());
            Assert.Equal("4", await page.GetAttributeAsync("#loss-chart", "data-points"));
            // train appends a line in another process; the page shows it on its next refresh
            string log = Path.Combine(b.Server.RunsDir, "tiny-run", "log.jsonl");
            string text = File.ReadAllText(log);
            File.WriteAllText(log, text[..(text.LastIndexOf('\n') + 1)] + "{\"step\": 250, \"loss\": 0.02, \"loss_q0\": 0.05, \"lr\": 0.0005, \"samples_per_sec\": 128}\n");
            await page.WaitForFunctionAsync("() => document.getElementById('run-step')?.textContent === '250'");
            Assert.Equal("5", await page.GetAttributeAsync("#loss-chart", "data-points"));
        }
        finally { await Close(b); }
    }
}

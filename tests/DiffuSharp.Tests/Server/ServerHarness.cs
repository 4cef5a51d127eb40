// A DiffuSharp server for tests: a models folder linking the shipped Fashion-MNIST model and the tiny diffusers
// pipelines of Fixtures, a runs folder with one fake training run, and the app on a TestServer (in process) or on
// a loopback port (for concurrent clients and the browser).
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using DiffuSharp.Imaging;
using DiffuSharp.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace DiffuSharp.Tests.Server;

public sealed class ServerHarness : IAsyncDisposable
{
    public WebApplication App { get; }
    public HttpClient Client { get; }
    public ServerState State { get; }
    public string Root { get; }
    public string RunsDir => Path.Combine(Root, "runs");
    /// <summary>The loopback address (Kestrel), or null on a TestServer.</summary>
    public string? Address { get; }

    ServerHarness(WebApplication app, HttpClient client, string root, string? address)
    {
        App = app;
        Client = client;
        Root = root;
        Address = address;
        State = app.Services.GetRequiredService<ServerState>();
    }

    /// <param name="addModels">writes more model folders into the models folder before the server starts</param>
    public static async Task<ServerHarness> StartAsync(bool loopback = false, ServerLimits? limits = null, Action<string>? addModels = null)
    {
        string root = Path.Combine(Path.GetTempPath(), "diffusharp-serve-" + Guid.NewGuid().ToString("N")[..8]);
        string models = Path.Combine(root, "models");
        Directory.CreateDirectory(models);
        Directory.CreateSymbolicLink(Path.Combine(models, "fashion-mnist"), Path.Combine(TestPaths.RepoRoot, "models", "fashion-mnist"));
        foreach (var name in new[] { "tiny_sd", "tiny_sd_controlnet" })
            Directory.CreateSymbolicLink(Path.Combine(models, name), Path.Combine(TestPaths.Diffusers, "pipelines", name));
        Directory.CreateDirectory(Path.Combine(models, "not-a-model"));
        addModels?.Invoke(models);
        MakeRun(Path.Combine(root, "runs", "tiny-run"));
        var options = new ServerOptions { ModelsDir = models, RunsDir = Path.Combine(root, "runs"), Port = 0, Limits = limits ?? new ServerLimits() };
        var app = ServerApp.Build(options, b => { if (!loopback) b.WebHost.UseTestServer(); });
        await app.StartAsync();
        if (!loopback) return new ServerHarness(app, app.GetTestClient(), root, null);
        string address = ServerApp.Address(app);
        return new ServerHarness(app, new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) }, root, address);
    }

    /// <summary>A run folder as `train` leaves it: four log lines, two sample grids, the checkpoint's trainer.json.</summary>
    static void MakeRun(string dir)
    {
        Directory.CreateDirectory(Path.Combine(dir, "samples"));
        Directory.CreateDirectory(Path.Combine(dir, "checkpoint"));
        var lines = Enumerable.Range(1, 4).Select(i => new JsonObject
        {
            ["step"] = i * 50, ["loss"] = 0.1 / i, ["mse"] = 0.1 / i, ["loss_q0"] = 0.3 / i, ["loss_q1"] = 0.1 / i, ["loss_q2"] = 0.05 / i,
            ["loss_q3"] = 0.01 / i, ["lr"] = 1e-4 * i, ["grad_norm"] = 0.5, ["samples_per_sec"] = 128.0,
        }.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "log.jsonl"), string.Join("\n", lines) + "\n{\"step\": 250, \"lo");   // a line being written
        var grid = Png.Encode(ImageGrid.Make(new float[4 * 28 * 28], 4, 1, 28, 28));
        File.WriteAllBytes(Path.Combine(dir, "samples", "step_0000100.png"), grid);
        File.WriteAllBytes(Path.Combine(dir, "samples", "step_0000200.png"), grid);
        File.WriteAllText(Path.Combine(dir, "checkpoint", "trainer.json"), "{\"format\": 1, \"step\": 200, \"config\": {\"batch_size\": 64, \"steps\": 1000}}");
    }

    public async Task<HttpResponseMessage> PostJson(string url, object body) => await Client.PostAsJsonAsync(url, body);

    public async Task<HttpResponseMessage> PostRaw(string url, string body)
        => await Client.PostAsync(url, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Client.Dispose();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

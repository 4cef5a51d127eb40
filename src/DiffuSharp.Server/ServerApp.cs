// diffusharp serve: the web page and HTTP API on ASP.NET Core (Kestrel, minimal APIs). The app is thin: endpoints
// check requests and turn them into GenerationSpecs for the one JobRunner; the page is embedded static files.
// Build() makes the app without starting it, so tests can put it on a TestServer or on a loopback port.
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace DiffuSharp.Server;

/// <summary>What the endpoints share: the options, the model list, the job runner and the gallery.</summary>
public sealed class ServerState : IDisposable
{
    public ServerOptions Options { get; }
    public ModelCatalog Catalog { get; }
    public Gallery Gallery { get; }
    public JobRunner Runner { get; }
    public TrainingRuns Runs { get; }
    /// <summary>The model sd-webui requests use when they name none (sd-webui's sd_model_checkpoint option).</summary>
    public string? DefaultModel { get; set; }
    readonly Random _seeds = new();

    public ServerState(ServerOptions options, ModelCatalog catalog)
    {
        Options = options;
        Catalog = catalog;
        Gallery = new Gallery(options.Limits.GalleryCapacity);
        Runner = new JobRunner(new GenerationEngine(), Gallery, options.Limits.QueueCapacity);
        Runs = new TrainingRuns(options.RunsDir);
        DefaultModel = catalog.Models.FirstOrDefault()?.Name;
    }

    /// <summary>The model a request names (null: the default), or a 400 listing the models.</summary>
    public ModelEntry Model(string? name)
    {
        name ??= DefaultModel;
        return Catalog.Find(name) ?? throw new HttpError(400, Catalog.Models.Count == 0
            ? $"no models: {Options.ModelsDir} holds no model folders (model.json or model_index.json)"
            : $"unknown model '{Truncate(name)}'; models: {string.Join(", ", Catalog.Models.Select(m => m.Name))}");
    }

    /// <summary>Checks the spec and queues it: 400 for a bad request, 429 when the queue is full.</summary>
    public Job Submit(GenerationSpec spec, ModelEntry model)
    {
        GenerationSpec resolved;
        lock (_seeds)
        {
            try { resolved = spec.Resolve(model, Options.Limits, _seeds); }
            catch (ArgumentException e) { throw new HttpError(400, e.Message); }
        }
        return Runner.TryEnqueue(resolved, model)
            ?? throw new HttpError(429, $"the queue is full ({Options.Limits.QueueCapacity} jobs waiting behind the running one); try again later");
    }

    static string Truncate(string? s) => s is null ? "" : s.Length <= 80 ? s : s[..80] + "…";

    public void Dispose() => Runner.Dispose();
}

public static class ServerApp
{
    /// <summary>Builds the app. <paramref name="configure"/> runs on the builder last (tests: UseTestServer).</summary>
    public static WebApplication Build(ServerOptions options, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseKestrel(k => k.Limits.MaxRequestBodySize = options.Limits.MaxBodyBytes + (1 << 20));
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.Services.AddOpenApi(o => o.AddDocumentTransformer((doc, _, _) =>
        {
            doc.Info.Title = "DiffuSharp";
            doc.Info.Description = "Sampling jobs, the gallery and training runs (/api), and a subset of sd-webui's API (/sdapi/v1).";
            return Task.CompletedTask;
        }));
        var state = new ServerState(options, ModelCatalog.Scan(options.ModelsDir));
        builder.Services.AddSingleton(state);
        configure?.Invoke(builder);

        var app = builder.Build();
        app.Lifetime.ApplicationStopping.Register(state.Dispose);
        app.Use(async (ctx, next) =>
        {
            try { await next(ctx); }
            catch (HttpError e) when (!ctx.Response.HasStarted)
            {
                await HttpError.Result(e.Status, e.Message).ExecuteAsync(ctx);
            }
            catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
            {
                await HttpError.Result(e.StatusCode, e.Message).ExecuteAsync(ctx);
            }
        });
        // a 4xx the framework answers without a body (415 wrong content type, 405 wrong method, 404 no route) gets a message too
        app.UseStatusCodePages(async sc =>
        {
            var r = sc.HttpContext.Response;
            string detail = r.StatusCode switch
            {
                415 => "send the body as JSON with Content-Type: application/json",
                405 => $"{sc.HttpContext.Request.Method} is not allowed on {sc.HttpContext.Request.Path}",
                404 => $"no endpoint at {sc.HttpContext.Request.Path}",
                _ => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(r.StatusCode),
            };
            await HttpError.Result(r.StatusCode, detail).ExecuteAsync(sc.HttpContext);
        });
        app.MapOpenApi("/openapi/{documentName}.json");
        PageAssets.Map(app);
        Api.Map(app, state);
        SdApi.Map(app, state);
        TrainingRuns.Map(app, state);
        return app;
    }

    /// <summary>The address the started app listens on (the real port when Port was 0).</summary>
    public static string Address(WebApplication app)
        => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    /// <summary>True for loopback hosts (127.0.0.0/8, ::1, localhost).</summary>
    public static bool IsLoopback(string host)
        => host == "localhost" || (System.Net.IPAddress.TryParse(host, out var ip) && System.Net.IPAddress.IsLoopback(ip));
}

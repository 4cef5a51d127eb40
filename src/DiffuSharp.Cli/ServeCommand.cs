// diffusharp serve: the local web page and HTTP API (src/DiffuSharp.Server). Listens on 127.0.0.1:7860 by default;
// another --host is allowed with a warning, since the API has no authentication.
using DiffuSharp.Server;
using Microsoft.Extensions.Hosting;

namespace DiffuSharp.Cli;

public static class ServeCommand
{
    static readonly OptionSpec[] Options =
    [
        new("models", "folder whose subfolders are models (model.json: pixel models; model_index.json: pipelines); default: the repository's models/", Value: "DIR"),
        new("runs", "folder whose subfolders are training runs, for the dashboard", "runs", Value: "DIR"),
        new("host", "address to listen on; anything but loopback exposes the server to the network", "127.0.0.1", Value: "HOST"),
        new("port", "port to listen on", "7860", Value: "N"),
        new("queue", "jobs that may wait behind the running one (more: HTTP 429)", "4", Value: "N"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var o = OptionParser.Parse("serve", args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("serve", "Serves the web page and HTTP API (sd-webui compatible subset); open http://127.0.0.1:7860.", Options)); return 0; }
        string models = o.String("models") ?? ShippedModelsFolder()
            ?? throw new CliException("serve: no --models given, and this repository has no models/ folder; pass --models DIR");
        if (!Directory.Exists(models)) throw new CliException($"serve: --models folder not found: {models}");
        string host = o.Required("host");
        if (host.Length == 0 || host.Any(c => char.IsWhiteSpace(c) || c is '/' or '?' or '#' or '@'))
            throw new CliException($"serve: --host must be an IP address or a host name, got '{host}'");
        int port = o.Int("port", min: 0, max: 65535);
        var options = new ServerOptions
        {
            ModelsDir = models, RunsDir = o.Required("runs"), Host = host, Port = port,
            Limits = new ServerLimits { QueueCapacity = o.Int("queue", min: 1, max: 1000) },
        };
        if (!ServerApp.IsLoopback(host))
            stderr.WriteLine($"warning: serve: listening on {host}: anyone who can reach this address can use the server (there is no authentication)");
        var app = ServerApp.Build(options);
        var state = (ServerState)app.Services.GetService(typeof(ServerState))!;
        foreach (var skipped in state.Catalog.Skipped) stderr.WriteLine($"warning: serve: skipped {skipped}");
        try { app.Start(); }
        catch (IOException e) { throw new CliException($"serve: cannot listen on {host}:{port}: {e.Message}"); }
        stdout.WriteLine($"DiffuSharp serving {state.Catalog.Models.Count} model(s) from {models} at {ServerApp.Address(app)} (Ctrl-C stops)");
        app.WaitForShutdown();
        return 0;
    }

    static string? ShippedModelsFolder()
    {
        string? model = ShippedModels.Find(SampleCommand.ShippedModel, "model.safetensors");
        return model is null ? null : Path.GetDirectoryName(model);
    }
}

// The settings of `diffusharp serve`: where models and training runs live, where to listen, and the limits every
// request is checked against (a request over a limit is a 400 naming the field and the limit).
namespace DiffuSharp.Server;

public sealed record ServerOptions
{
    /// <summary>Folder whose subfolders are model folders (model.json: pixel models; model_index.json: pipelines).</summary>
    public string ModelsDir { get; init; } = "models";
    /// <summary>Folder whose subfolders are training runs (log.jsonl, samples/).</summary>
    public string RunsDir { get; init; } = "runs";
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0: any free port (tests).</summary>
    public int Port { get; init; } = 7860;
    public ServerLimits Limits { get; init; } = new();
}

/// <summary>What one request may ask for. sd-webui's own UI caps steps at 150 and batch size at 8.</summary>
public sealed record ServerLimits
{
    public int MaxSteps { get; init; } = 150;
    public int MaxBatchSize { get; init; } = 8;
    public int MaxIterations { get; init; } = 8;
    public int MaxSide { get; init; } = 1024;                 // width and height, pixels
    public int MaxPromptChars { get; init; } = 2000;
    public long MaxBodyBytes { get; init; } = 16L << 20;      // a request body (JSON with base64 images)
    public int MaxImagePixels { get; init; } = 1024 * 1024;   // a decoded upload
    public int QueueCapacity { get; init; } = 4;              // jobs waiting behind the running one; more: 429
    public int GalleryCapacity { get; init; } = 200;          // results kept in memory for the gallery (oldest dropped)
}

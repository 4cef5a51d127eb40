// The page: index.html, app.js and style.css embedded in the assembly (wwwroot/), served with their content types.
// Nothing is fetched from elsewhere, so the page works offline.
using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DiffuSharp.Server;

public static class PageAssets
{
    static readonly Dictionary<string, string> Types = new(StringComparer.Ordinal)
    {
        [".html"] = "text/html; charset=utf-8", [".js"] = "text/javascript; charset=utf-8", [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml", [".png"] = "image/png",
    };

    static readonly Lazy<Dictionary<string, byte[]>> Files = new(() =>
    {
        var asm = typeof(PageAssets).Assembly;
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith("wwwroot/", StringComparison.Ordinal)))
        {
            using var s = asm.GetManifestResourceStream(name)!;
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            files[name["wwwroot/".Length..]] = ms.ToArray();
        }
        return files;
    });

    public static void Map(WebApplication app)
    {
        app.MapGet("/", () => Serve("index.html")).ExcludeFromDescription();
        app.MapGet("/static/{file}", (string file) => Serve(file)).ExcludeFromDescription();
    }

    static IResult Serve(string file)
        => Files.Value.TryGetValue(file, out var bytes) && Types.TryGetValue(Path.GetExtension(file), out var type)
            ? Results.Bytes(bytes, type)
            : HttpError.Result(404, $"no file '{(file.Length <= 80 ? file : file[..80])}'");
}

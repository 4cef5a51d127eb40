// JSON files a user may have edited (model.json, trainer.json, manifest.json), parsed so that every defect is an
// InvalidDataException naming the file, up front: invalid JSON, duplicate keys (System.Text.Json's JsonNode would
// throw "An item with the same key has already been added" on first access) and strings that are not text (a lone
// UTF-16 surrogate escape such as "\ud800", which JsonNode would throw on when read).
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DiffuSharp.IO;

/// <summary>Parses JSON files a user may have edited (model.json, trainer.json, manifest.json) so that every defect
/// (invalid JSON, a duplicate key, a lone UTF-16 surrogate) is an <see cref="InvalidDataException"/> naming the file,
/// raised up front.</summary>
public static class StrictJson
{
    static readonly JsonDocumentOptions Options = new() { AllowDuplicateProperties = false, MaxDepth = 64 };

    /// <summary>Parses text; throws InvalidDataException starting with <paramref name="source"/> on any defect.</summary>
    public static JsonNode? Parse(string text, string source)
    {
        try
        {
            using (var doc = JsonDocument.Parse(text, Options)) Check(doc.RootElement, source);
            return JsonNode.Parse(text, documentOptions: Options);
        }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})"); }
        catch (InvalidOperationException) { throw NotText(source); }             // a lone surrogate in a key, met by the duplicate check
    }

    static InvalidDataException NotText(string source)
        => new($"{source}: a string or key is not valid text (a lone UTF-16 surrogate escape such as \\ud800)");

    /// <summary>
    /// Throws InvalidDataException starting with <paramref name="source"/> when a string or key anywhere in the
    /// document is not valid text (a lone surrogate escape), for parsers that read a JsonDocument themselves.
    /// </summary>
    public static void CheckText(JsonElement root, string source) => Check(root, source);

    /// <summary>Reads a UTF-8 file and parses it with <see cref="Parse"/>.</summary>
    public static JsonNode? ParseFile(string path) => Parse(File.ReadAllText(path), path);

    static void Check(JsonElement e, string source)
    {
        try
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var p in e.EnumerateObject()) { _ = p.Name; Check(p.Value, source); }
                    break;
                case JsonValueKind.Array:
                    foreach (var item in e.EnumerateArray()) Check(item, source);
                    break;
                case JsonValueKind.String:
                    _ = e.GetString();
                    break;
            }
        }
        catch (InvalidOperationException) { throw NotText(source); }
    }
}

// Request problems as HTTP answers: every 4xx is JSON {"error": reason phrase, "detail": what is wrong} (the shape of
// sd-webui's API errors), never a stack trace. Also the size-limited body reader and base64 PNG decoding that every
// POST goes through.
using System.Buffers.Binary;
using System.Text.Json;
using DiffuSharp.Imaging;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace DiffuSharp.Server;

/// <summary>A request the server refuses, with the status and the message the client gets.</summary>
public sealed class HttpError(int status, string message) : Exception(message)
{
    public int Status { get; } = status;

    public static IResult Result(int status, string detail)
        => Results.Json(new ErrorBody(ReasonPhrases.GetReasonPhrase(status), detail), statusCode: status);
}

public sealed record ErrorBody(
    [property: System.Text.Json.Serialization.JsonPropertyName("error")] string Error,
    [property: System.Text.Json.Serialization.JsonPropertyName("detail")] string Detail);

public static class RequestBody
{
    static readonly JsonSerializerOptions Json = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = 16,
    };

    /// <summary>Reads the body as JSON of <typeparamref name="T"/>: 413 past <paramref name="limit"/> bytes (checked on
    /// Content-Length before reading, and while reading), 400 for malformed JSON or a wrong type, naming where.</summary>
    public static async Task<T> ReadJsonAsync<T>(HttpContext ctx, long limit) where T : class
    {
        long? declared = ctx.Request.ContentLength;
        if (declared > limit) throw new HttpError(413, $"the request body is {declared} bytes; the limit is {limit} bytes");
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
        {
            if (buffer.Length + n > limit) throw new HttpError(413, $"the request body is over the limit of {limit} bytes");
            buffer.Write(chunk, 0, n);
        }
        if (buffer.Length == 0) throw new HttpError(400, "the request body is empty; send a JSON object");
        try
        {
            return JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), Json)
                ?? throw new HttpError(400, "the request body is JSON null; send a JSON object");
        }
        catch (JsonException e)
        {
            throw new HttpError(400, $"malformed JSON: {e.Message}");
        }
    }

    /// <summary>A base64 PNG (optionally a data: URL) as pixels, refusing non-PNG data and images over
    /// <paramref name="maxPixels"/> before decoding them.</summary>
    public static Image8 DecodeImage(string field, string base64, int maxPixels)
    {
        int comma = base64.StartsWith("data:", StringComparison.Ordinal) ? base64.IndexOf(',') : -1;
        var text = base64.AsSpan(comma + 1).Trim();
        var bytes = new byte[text.Length * 3 / 4 + 3];
        if (!Convert.TryFromBase64Chars(text, bytes, out int len)) throw new HttpError(400, $"{field}: not valid base64");
        bytes = bytes[..len];
        ReadOnlySpan<byte> signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        if (len < 24 || !bytes.AsSpan(0, 8).SequenceEqual(signature)) throw new HttpError(400, $"{field}: not a PNG image (only PNG is accepted)");
        long w = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(16)), h = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(20));
        if (w * h > maxPixels) throw new HttpError(400, $"{field}: the image is {w}x{h}; the limit is {maxPixels} pixels");
        try { return Png.Decode(bytes, field); }
        catch (InvalidDataException e) { throw new HttpError(400, $"{field}: {e.Message}"); }
    }
}

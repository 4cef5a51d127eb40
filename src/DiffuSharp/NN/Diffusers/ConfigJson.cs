// Reading a diffusers component's config.json (as diffusers 0.27's ConfigMixin writes it): every key is read
// through this class, which remembers what was read, so a key nobody reads is reported instead of ignored. Keys
// starting with "_" (_class_name, _diffusers_version, _name_or_path, …) are bookkeeping and skipped. Every problem
// is one InvalidDataException naming the file, the key and the value.
using System.Globalization;
using System.Text.Json;

namespace DiffuSharp.NN.Diffusers;

internal sealed class ConfigJson
{
    readonly JsonElement _root;
    readonly HashSet<string> _read = new(StringComparer.Ordinal);

    /// <summary>The file name used in every message.</summary>
    public string Source { get; }

    ConfigJson(JsonElement root, string source) => (_root, Source) = (root, source);

    public static ConfigJson Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: config file not found", path);
        string text = File.ReadAllText(path);
        return Parse(text, path);
    }

    public static ConfigJson Parse(string json, string source)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})"); }
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: expected a JSON object");
        IO.StrictJson.CheckText(doc.RootElement, source);
        return new ConfigJson(doc.RootElement.Clone(), source);
    }

    /// <summary>The "_class_name" entry, or null.</summary>
    public string? ClassName => _root.TryGetProperty("_class_name", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>Checks "_class_name" (when present) names the class being built.</summary>
    public void ExpectClass(string className)
    {
        if (ClassName is { } c && c != className)
            throw new InvalidDataException($"{Source}: \"_class_name\" is \"{c}\", expected \"{className}\"");
    }

    public Exception Error(string key, string problem)
        => new InvalidDataException($"{Source}: \"{key}\" = {Raw(key)}: {problem}");

    string Raw(string key) => _root.TryGetProperty(key, out var v) ? v.GetRawText() : "(absent)";

    bool TryGet(string key, out JsonElement value)
    {
        _read.Add(key);
        return _root.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;
    }

    /// <summary>True when the key is present with the value null (not when it is absent).</summary>
    public bool IsNull(string key)
    {
        _read.Add(key);
        return _root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Null;
    }

    /// <summary>True when the key is present with a non-null value.</summary>
    public bool Has(string key) => TryGet(key, out _);

    /// <summary>Marks keys diffusers reads but that change nothing here (e.g. sample_size).</summary>
    public void Informational(params string[] keys)
    {
        foreach (var k in keys) _read.Add(k);
    }

    public int Int(string key, int fallback) => IntOrNull(key) ?? fallback;

    /// <summary>diffusers' sample_size: an integer or [height, width] (informational here); the height, or null.</summary>
    public int? SampleSize(string key = "sample_size")
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Array)
        {
            var hw = Ints(key, []);
            return hw.Length == 2 ? hw[0] : throw Error(key, "expected an integer or [height, width]");
        }
        return IntOrNull(key);
    }

    public int? IntOrNull(string key)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        throw Error(key, "expected an integer");
    }

    public double Double(string key, double fallback)
    {
        if (!TryGet(key, out var v)) return fallback;
        if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
        throw Error(key, "expected a number");
    }

    public bool Bool(string key, bool fallback)
    {
        if (!TryGet(key, out var v)) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(key, "expected true or false"),
        };
    }

    public string? StringOrNull(string key)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        throw Error(key, "expected a string");
    }

    public string[] Strings(string key, string[] fallback)
    {
        if (!TryGet(key, out var v)) return fallback;
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            throw Error(key, "expected a list of strings");
        return v.EnumerateArray().Select(e => e.GetString()!).ToArray();
    }

    public int[] Ints(string key, int[] fallback)
    {
        if (!TryGet(key, out var v)) return fallback;
        if (v.ValueKind != JsonValueKind.Array) throw Error(key, "expected a list of integers");
        return v.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int i) ? i : throw Error(key, "expected a list of integers")).ToArray();
    }

    /// <summary>A list of numbers, or null when absent or null.</summary>
    public double[]? Doubles(string key)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number))
            throw Error(key, "expected a list of numbers");
        return v.EnumerateArray().Select(e => e.GetDouble()).ToArray();
    }

    /// <summary>An integer or a list of n integers (diffusers' "int or tuple per block"): always n values.</summary>
    public int[] IntPerBlock(string key, int n, int fallback)
    {
        if (!TryGet(key, out var v)) return Enumerable.Repeat(fallback, n).ToArray();
        if (v.ValueKind == JsonValueKind.Number) return Enumerable.Repeat(IntOrNull(key)!.Value, n).ToArray();
        var list = Ints(key, []);
        if (list.Length != n) throw Error(key, $"expected {n} values, one per block, got {list.Length}");
        return list;
    }

    /// <summary>Like <see cref="IntPerBlock"/>, null when the key is absent or null.</summary>
    public int[]? IntPerBlockOrNull(string key, int n) => Has(key) ? IntPerBlock(key, n, 0) : null;

    public bool[] BoolPerBlock(string key, int n, bool fallback)
    {
        if (!TryGet(key, out var v)) return Enumerable.Repeat(fallback, n).ToArray();
        if (v.ValueKind is JsonValueKind.True or JsonValueKind.False) return Enumerable.Repeat(v.GetBoolean(), n).ToArray();
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind is not (JsonValueKind.True or JsonValueKind.False)))
            throw Error(key, "expected true/false or a list of them");
        var list = v.EnumerateArray().Select(e => e.GetBoolean()).ToArray();
        if (list.Length != n) throw Error(key, $"expected {n} values, one per block, got {list.Length}");
        return list;
    }

    /// <summary>An integer, a list of integers (one per block) or a list of lists (one per layer of each block).</summary>
    public int[][]? NestedPerBlock(string key, int n, int[] layers)
    {
        if (!TryGet(key, out var v)) return null;
        int[] PerLayer(int block, int value) => Enumerable.Repeat(value, layers[block]).ToArray();
        if (v.ValueKind == JsonValueKind.Number) { int x = IntOrNull(key)!.Value; return Enumerable.Range(0, n).Select(b => PerLayer(b, x)).ToArray(); }
        if (v.ValueKind != JsonValueKind.Array) throw Error(key, "expected an integer or a list");
        var items = v.EnumerateArray().ToArray();
        if (items.Length != n) throw Error(key, $"expected {n} entries, one per block, got {items.Length}");
        var result = new int[n][];
        for (int b = 0; b < n; b++)
        {
            if (items[b].ValueKind == JsonValueKind.Number && items[b].TryGetInt32(out int x)) result[b] = PerLayer(b, x);
            else if (items[b].ValueKind == JsonValueKind.Array)
                result[b] = items[b].EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int y) ? y : throw Error(key, "expected integers")).ToArray();
            else throw Error(key, "expected integers or lists of integers");
        }
        return result;
    }

    /// <summary>A string key that must be one of the listed values (the first is the default when absent).</summary>
    public T Choice<T>(string key, T fallback, params (string Name, T Value)[] allowed)
    {
        if (!TryGet(key, out var v)) return fallback;
        if (v.ValueKind != JsonValueKind.String) throw Error(key, "expected a string");
        string s = v.GetString()!;
        foreach (var (name, value) in allowed) if (name == s) return value;
        throw Error(key, $"unsupported value (supported: {string.Join(", ", allowed.Select(a => a.Name))})");
    }

    /// <summary>A key whose only supported value is null/absent (a feature not built here); anything else is an error.</summary>
    public void MustBeNull(string key, string feature)
    {
        if (TryGet(key, out _)) throw Error(key, $"{feature} is not supported; only null is");
    }

    /// <summary>A key whose value must equal the given one (e.g. a flag for a feature not built here).</summary>
    public void MustBe(string key, bool expected, string feature)
    {
        if (Bool(key, expected) != expected) throw Error(key, $"{feature} is not supported; only {(expected ? "true" : "false")} is");
    }

    /// <summary>After every key was read: any key nobody read is an error naming it.</summary>
    public void RejectUnknownKeys(string className)
    {
        foreach (var p in _root.EnumerateObject())
            if (!p.Name.StartsWith('_') && !_read.Contains(p.Name))
                throw new InvalidDataException($"{Source}: unknown key \"{p.Name}\" = {p.Value.GetRawText()} for {className} (diffusers 0.27 does not read it)");
    }

    public static string Format(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}

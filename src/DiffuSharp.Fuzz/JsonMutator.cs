// Structure-aware JSON mutations: the seed is parsed into a tree, 1-3 values are replaced by boundary values of
// every JSON type, removed, duplicated or given unknown siblings, and the text is written back. Values a tree cannot
// hold (1e999, -0, a lone UTF-16 surrogate, a key twice, raw control bytes) go in as text afterwards; one input in
// six also gets byte-level mutations of the text.
using System.Text;
using System.Text.Json.Nodes;

namespace DiffuSharp.Fuzz;

public static class JsonMutator
{
    const string Raw = "\u0001RAW:";                         // a string value replaced by raw JSON text after writing

    static readonly string[] RawValues =
    [
        "1e999", "-1e999", "-0", "1E+400", "0.0000000000000000000000000000001", "123456789012345678901234567890",
        "\"\\ud800\"", "\"a\\udfffb\"", "\"\\u0000\"", "\"\\u001b[31mred\\u0007\"", "\"\u00e9\u4e2d\ud83d\udca5\"",
        new string('[', 40) + new string(']', 40), new string('[', 100) + new string(']', 100), "NaN", "Infinity",
    ];

    static JsonNode? Interesting(Random r) => r.Next(24) switch
    {
        0 => 0, 1 => -1, 2 => 1, 3 => 2, 4 => 0.5, 5 => -0.5, 6 => 1e-300, 7 => 1e308, 8 => -1e308,
        9 => int.MaxValue, 10 => (long)int.MaxValue + 1, 11 => long.MaxValue, 12 => int.MinValue,
        13 => "", 14 => "abc", 15 => "1", 16 => new string('x', 1 + r.Next(5000)),
        17 => true, 18 => false, 19 => null,
        20 => new JsonArray(), 21 => new JsonObject(),
        22 => new JsonArray(Enumerable.Range(0, r.Next(1, 40)).Select(i => (JsonNode)(r.Next(3) == 0 ? -i : i * 7)).ToArray()),
        _ => Raw + RawValues[r.Next(RawValues.Length)],
    };

    /// <summary>A mutated copy of the JSON text <paramref name="seed"/> (which must parse).</summary>
    public static byte[] Mutate(byte[] seed, Random r, IReadOnlyList<byte[]>? others = null)
    {
        var root = JsonNode.Parse(seed)!;
        int n = 1 + r.Next(3);
        for (int k = 0; k < n; k++) root = MutateTree(root, r);
        string text = root.ToJsonString();
        foreach (var raw in RawValues) text = text.Replace(Quote(Raw + raw), raw, StringComparison.Ordinal);
        if (r.Next(5) == 0) text = MutateText(text, r);
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        return r.Next(6) == 0 ? Bytes.Mutate(bytes, r, others) : bytes;
    }

    static string Quote(string s) => JsonValue.Create(s)!.ToJsonString();

    static JsonNode MutateTree(JsonNode root, Random r)
    {
        var slots = new List<(JsonNode Parent, string? Key, int Index)>();
        Collect(root, slots);
        if (slots.Count == 0 || r.Next(40) == 0) return r.Next(2) == 0 ? Interesting(r) ?? new JsonObject() : new JsonArray(root.DeepClone());
        var (parent, key, index) = slots[r.Next(slots.Count)];
        JsonNode? current = key is not null ? parent[key] : parent[index];
        switch (r.Next(9))
        {
            case 0 or 1 or 2: Set(parent, key, index, Interesting(r)); break;
            case 3:                                                            // remove
                if (parent is JsonObject o) o.Remove(key!); else ((JsonArray)parent).RemoveAt(index);
                break;
            case 4 when current is JsonValue v && v.TryGetValue(out double d):     // nudge a number
                double nudged = new[] { d + 1, d - 1, d * 2, -d, d / 3, d * 1e6, Math.Floor(d) + 0.5 }[r.Next(7)];
                Set(parent, key, index, double.IsFinite(nudged) ? nudged : Raw + "1e999");
                break;
            case 5 when parent is JsonObject po:                               // an unknown sibling key
                po[r.Next(3) == 0 ? "" : "unknown_" + r.Next(100)] = Interesting(r);
                break;
            case 6 when current is JsonArray a:                                // resize an array
                if (a.Count > 0 && r.Next(2) == 0) a.RemoveAt(r.Next(a.Count));
                else a.Add(a.Count > 0 && r.Next(2) == 0 ? a[r.Next(a.Count)]?.DeepClone() : Interesting(r));
                break;
            case 7:                                                            // a value from elsewhere in the document
                var (p2, k2, i2) = slots[r.Next(slots.Count)];
                Set(parent, key, index, (k2 is not null ? p2[k2] : p2[i2])?.DeepClone());
                break;
            default:                                                           // the value as a string, or wrapped in an array
                Set(parent, key, index, r.Next(2) == 0 ? (current?.ToJsonString() ?? "null") : new JsonArray(current?.DeepClone()));
                break;
        }
        return root;
    }

    static void Set(JsonNode parent, string? key, int index, JsonNode? value)
    {
        if (key is not null) parent[key] = value; else parent[index] = value;
    }

    static void Collect(JsonNode node, List<(JsonNode, string?, int)> slots)
    {
        if (node is JsonObject o)
            foreach (var (k, v) in o.ToList())
            {
                slots.Add((o, k, -1));
                if (v is not null) Collect(v, slots);
            }
        else if (node is JsonArray a)
            for (int i = 0; i < a.Count; i++)
            {
                slots.Add((a, null, i));
                if (a[i] is { } v) Collect(v, slots);
            }
    }

    static string MutateText(string text, Random r)
    {
        switch (r.Next(7))
        {
            case 0:                                                            // a key twice
                int q = text.IndexOf("\":", StringComparison.Ordinal);
                int start = q < 0 ? -1 : text.LastIndexOf('"', q - 1);
                int end = q < 0 ? -1 : text.IndexOfAny([',', '}'], q);
                return start < 0 || end < 0 ? text : text.Insert(start, text[start..end] + ",");
            case 1: return text[..r.Next(text.Length + 1)];                    // truncated
            case 2: return "\uFEFF" + text;                                    // byte-order mark
            case 3: return text + new[] { "x", "}", ",", "\0", " // c", "{}" }[r.Next(6)];
            case 4: return text.Replace(",", r.Next(2) == 0 ? ",," : ", /* c */");
            case 5:                                                            // raw control bytes inside a string
                int s = text.IndexOf('"', r.Next(Math.Max(1, text.Length)));
                return s < 0 ? text : text.Insert(s + 1, "\u001b]0;x\u0007\u0000");
            default: return text.Replace("\":", "\" :\n\t");
        }
    }
}

// manifest.json of a checkpoint folder: every file's size and SHA-256, plus copies of the model flags and the
// training config it was written with. Written last (after trainer.json), checked before a resume reads anything:
// a truncated or altered file is refused by name, and an edited model.json or trainer.json config is refused with
// the key that changed. Checkpoints written before manifests existed (no manifest.json) load unchecked.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;

namespace DiffuSharp.Training;

/// <summary>A checkpoint's manifest.json: every file's size and SHA-256 plus the model flags and training config,
/// checked before a resume reads anything so a truncated or altered file, or an edited config, is refused by
/// name.</summary>
public static class CheckpointManifest
{
    /// <summary>The manifest's file name, written last in a checkpoint folder.</summary>
    public const string FileName = "manifest.json";
    const int FormatVersion = 1;

    /// <summary>Hashes every file in folder (but the manifest and temporary files) and writes manifest.json atomically.</summary>
    public static void Write(string folder, JsonObject modelFlags, JsonObject trainConfig)
    {
        var files = new JsonObject();
        foreach (var path in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(path);
            if (name == FileName || name.Contains(".tmp-", StringComparison.Ordinal)) continue;
            files[name] = new JsonObject { ["size"] = new FileInfo(path).Length, ["sha256"] = Sha256(path) };
        }
        var root = new JsonObject
        {
            ["format"] = FormatVersion,
            ["files"] = files,
            ["model"] = modelFlags.DeepClone(),
            ["config"] = trainConfig.DeepClone(),
        };
        AtomicFile.WriteJson(Path.Combine(folder, FileName), root);
    }

    /// <summary>True when folder has a manifest.</summary>
    public static bool Exists(string folder) => File.Exists(Path.Combine(folder, FileName));

    /// <summary>
    /// Checks every file the manifest lists: present, same size, same SHA-256. A mismatch is an InvalidDataException
    /// naming the file; for model.json and trainer.json it names the first key whose value differs from the copy in
    /// the manifest. Does nothing when the folder has no manifest (an older checkpoint).
    /// </summary>
    public static void Verify(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return;
        var root = StrictJson.ParseFile(path) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        if (root["format"] is not JsonValue fv || !fv.TryGetValue(out int format) || format != FormatVersion)
            throw new InvalidDataException($"{path}: unsupported manifest (expected \"format\": {FormatVersion})");
        if (root["files"] is not JsonObject files) throw new InvalidDataException($"{path}: missing \"files\"");
        foreach (var (name, node) in files)
        {
            if (name.Length == 0 || name.IndexOfAny(['/', '\\']) >= 0 || name is "." or "..")
                throw new InvalidDataException($"{path}: bad file name in the manifest");
            if (node is not JsonObject entry || entry["size"] is not JsonValue sv || !sv.TryGetValue(out long size)
                || entry["sha256"] is not JsonValue hv || !hv.TryGetValue(out string? sha))
                throw new InvalidDataException($"{path}: entry \"{name}\" needs \"size\" and \"sha256\"");
            string file = Path.Combine(folder, name);
            if (!File.Exists(file)) throw new InvalidDataException($"{file}: listed in the checkpoint manifest but missing");
            long actual = new FileInfo(file).Length;
            if (actual == size && string.Equals(Sha256(file), sha, StringComparison.OrdinalIgnoreCase)) continue;
            string? key = name switch
            {
                "model.json" => ChangedKey(file, null, root["model"] as JsonObject),
                "trainer.json" => ChangedKey(file, "config", root["config"] as JsonObject),
                _ => null,
            };
            throw new InvalidDataException(
                key is not null ? $"{file}: {key} was changed after the checkpoint was written; a resume keeps the checkpoint's settings"
                : actual != size ? $"{file}: {actual} bytes, the checkpoint manifest says {size} (truncated or corrupted)"
                : $"{file}: SHA-256 differs from the checkpoint manifest (corrupted)");
        }
    }

    /// <summary>The first key of the file's JSON (or of its <paramref name="member"/> object) whose value differs from
    /// <paramref name="expected"/>, as text like "\"num_channels\" (32 → 64)"; null when none can be named.</summary>
    static string? ChangedKey(string file, string? member, JsonObject? expected)
    {
        if (expected is null) return null;
        JsonObject? actual;
        try { actual = StrictJson.ParseFile(file) as JsonObject; }
        catch (InvalidDataException) { return null; }
        if (member is not null) actual = actual?[member] as JsonObject;
        if (actual is null) return null;
        foreach (var key in expected.Select(p => p.Key).Union(actual.Select(p => p.Key)))
        {
            string was = expected[key]?.ToJsonString() ?? "absent", now = actual[key]?.ToJsonString() ?? "absent";
            if (was != now) return string.Create(CultureInfo.InvariantCulture, $"\"{key}\" ({was} → {now})");
        }
        return null;
    }

    static string Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }
}

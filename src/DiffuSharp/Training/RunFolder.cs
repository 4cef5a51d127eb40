// The output folder of a training run (<out>/checkpoint, <out>/model, log.jsonl, samples/) and how its folders are
// replaced: a new set is written into <name>.tmp-<random>, then <name> → <name>.old-<random>, tmp → <name>, old
// deleted. A crash at any point leaves either the previous set or the new one complete under some name:
// Tidy() at the start of a run puts a complete checkpoint.old-* back when checkpoint/ is gone, and removes every
// stale tmp/old folder and temporary file. A folder is deleted completeness markers first (manifest.json,
// trainer.json, model.json), so a half-deleted set never looks complete.
using System.Security.Cryptography;

namespace DiffuSharp.Training;

/// <summary>A training run's output folder (checkpoint/, model/, log.jsonl, samples/) and crash-safe replacement of its
/// subfolders: a new set is written beside the old and swapped in by renames, and Tidy restores or removes whatever a
/// crash left.</summary>
public static class RunFolder
{
    /// <summary>The final model folder's name inside a run folder.</summary>
    public const string ModelFolderName = "model";

    static readonly string[] Markers = [CheckpointManifest.FileName, "trainer.json", "model.json"];

    /// <summary>Writes a folder's new contents through <paramref name="write"/> (which gets an empty folder) and
    /// swaps it in for <paramref name="final"/>; if write throws, the old folder is untouched.</summary>
    public static void Replace(string final, Action<string> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        final = Path.TrimEndingDirectorySeparator(Path.GetFullPath(final));
        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        string tmp = $"{final}.tmp-{RandomHex()}";
        Directory.CreateDirectory(tmp);
        try
        {
            write(tmp);
            string? old = null;
            if (Directory.Exists(final))
            {
                old = $"{final}.old-{RandomHex()}";
                Directory.Move(final, old);
            }
            Directory.Move(tmp, final);
            if (old is not null) TryDelete(old);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>
    /// Repairs what a killed run left in <paramref name="outFolder"/>: when checkpoint/ is missing, the newest complete
    /// checkpoint.old-* becomes checkpoint/ again; then every checkpoint/model .tmp-* and .old-* folder and every
    /// stale temporary file of an atomic write is removed. Returns the paths removed.
    /// </summary>
    public static IReadOnlyList<string> Tidy(string outFolder)
    {
        var removed = new List<string>();
        if (!Directory.Exists(outFolder)) return removed;
        string ckpt = Path.Combine(outFolder, Checkpoint.FolderName);
        if (!Directory.Exists(ckpt))
        {
            try { if (Checkpoint.Locate(outFolder) is var found && found != ckpt) Directory.Move(found, ckpt); }
            catch (DirectoryNotFoundException) { }
        }
        foreach (string name in new[] { Checkpoint.FolderName, ModelFolderName })
            foreach (string pattern in new[] { ".tmp-*", ".old-*" })
                foreach (var dir in Directory.EnumerateDirectories(outFolder, name + pattern).ToList())
                    if (TryDelete(dir)) removed.Add(dir);
        foreach (var file in Directory.EnumerateFiles(outFolder, "*.tmp-*").ToList())
            try { File.Delete(file); removed.Add(file); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        return removed;
    }

    /// <summary>True when outFolder holds what a training run writes: a checkpoint (or a leftover of one), a model
    /// folder or a log.</summary>
    public static bool HoldsRun(string outFolder)
        => Directory.Exists(outFolder)
           && (File.Exists(Path.Combine(outFolder, Trainer.LogFile))
               || Directory.EnumerateDirectories(outFolder, Checkpoint.FolderName + "*").Any()
               || Directory.EnumerateDirectories(outFolder, ModelFolderName + "*").Any());

    /// <summary>Deletes what a training run wrote in outFolder (checkpoints, model folders, the log, the sample grids
    /// step_*.png), for a new run in its place; other files are left.</summary>
    public static void Clear(string outFolder)
    {
        if (!Directory.Exists(outFolder)) return;
        foreach (var dir in Directory.EnumerateDirectories(outFolder, Checkpoint.FolderName + "*")
                     .Concat(Directory.EnumerateDirectories(outFolder, ModelFolderName + "*")).ToList())
            if (!TryDelete(dir)) throw new IOException($"cannot delete {dir}");
        File.Delete(Path.Combine(outFolder, Trainer.LogFile));
        string samples = Path.Combine(outFolder, "samples");
        if (Directory.Exists(samples))
            foreach (var f in Directory.EnumerateFiles(samples, "step_*.png").ToList()) File.Delete(f);
    }

    /// <summary>True when outFolder/model holds model.json and a model.safetensors written at <paramref name="step"/>
    /// (its "step" metadata), i.e. the model folder of the checkpoint at that step.</summary>
    public static bool ModelIsCurrent(string outFolder, long step)
    {
        string dir = Path.Combine(outFolder, ModelFolderName), weights = Path.Combine(dir, "model.safetensors");
        if (!File.Exists(Path.Combine(dir, "model.json")) || !File.Exists(weights)) return false;
        try
        {
            return IO.SafeTensorsFile.Open(weights).Metadata.TryGetValue("step", out var s)
                   && s == step.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is InvalidDataException or IOException) { return false; }
    }

    /// <summary>Deletes a folder, its completeness markers first; false when it could not be removed.</summary>
    public static bool TryDelete(string dir)
    {
        try
        {
            foreach (var marker in Markers)
            {
                string f = Path.Combine(dir, marker);
                if (File.Exists(f)) File.Delete(f);
            }
            Directory.Delete(dir, recursive: true);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    static string RandomHex() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
}

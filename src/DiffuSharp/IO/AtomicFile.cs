// Crash-safe file replacement: write to a temporary file beside the target, flush it to disk, then rename it over
// the target (rename is atomic within one folder on POSIX and NTFS). Readers see either the old file or the
// complete new one, never a half-written file. The folder itself is not fsynced (.NET has no portable call for it),
// so after a power cut the rename may be lost, but never the old file's contents.
using System.Security.Cryptography;

namespace DiffuSharp.IO;

/// <summary>Crash-safe file replacement: the new contents go to a temporary file beside the target, are flushed to disk
/// and renamed over it, so a reader (or a crash) sees the old file or the whole new one, never a partial
/// write.</summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="node"/> as indented JSON with a final newline (UTF-8, no byte-order mark) to
    /// <paramref name="path"/>, atomically as <see cref="Write"/> does: the form of every config and state file.</summary>
    public static void WriteJson(string path, System.Text.Json.Nodes.JsonNode node)
    {
        string text = node.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";
        Write(path, s => s.Write(System.Text.Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>
    /// Writes <paramref name="path"/> via <c>path + ".tmp-&lt;random&gt;"</c> in the same folder. If <paramref name="write"/>
    /// throws, the temporary file is deleted, the old file is left untouched and the exception propagates.
    /// <paramref name="write"/> must not dispose the stream.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string temp = $"{full}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); }
            catch (IOException) { }                         // best effort: the original exception matters more
            catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}

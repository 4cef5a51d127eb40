// Thrown when a dataset's files are not where a loader looked; the message is one line that says how to get them.
namespace DiffuSharp.Data;

/// <summary>Thrown when a dataset's files are not where a loader looked; the message is one line that says how to get
/// them.</summary>
public sealed class DatasetNotFoundException : Exception
{
    /// <summary>An exception whose <paramref name="message"/> names the missing files and how to get them.</summary>
    public DatasetNotFoundException(string message) : base(message) { }
}

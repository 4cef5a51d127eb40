// Thrown when a dataset's files are not where a loader looked; the message is one line that says how to get them.
namespace DiffuSharp.Data;

public sealed class DatasetNotFoundException : Exception
{
    public DatasetNotFoundException(string message) : base(message) { }
}

// AtomicFile: the target is replaced only by a complete, flushed file; a failing writer leaves the old file and no
// temporary behind.
using DiffuSharp.IO;
using Xunit;

namespace DiffuSharp.Tests.IO;

public sealed class AtomicFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("diffusharp-atomic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Creates_then_overwrites_and_leaves_no_temporary()
    {
        string path = Path.Combine(_dir, "f.bin");
        AtomicFile.Write(path, s => s.Write([1, 2, 3]));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        AtomicFile.Write(path, s => s.Write([9]));
        Assert.Equal([9], File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    [Fact]
    public void Failure_keeps_the_old_file_and_deletes_the_temporary()
    {
        string path = Path.Combine(_dir, "f.bin");
        File.WriteAllBytes(path, [7, 7]);
        string? tempSeen = null;
        var e = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[100_000]);
            tempSeen = ((FileStream)s).Name;
            throw new InvalidOperationException("boom");
        }));
        Assert.Equal("boom", e.Message);
        Assert.Equal([7, 7], File.ReadAllBytes(path));
        Assert.StartsWith(path + ".tmp-", tempSeen);
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    [Fact]
    public void Missing_folder_fails_without_creating_anything()
    {
        Assert.Throws<DirectoryNotFoundException>(() => AtomicFile.Write(Path.Combine(_dir, "no", "f.bin"), s => s.WriteByte(1)));
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }
}

// Lazily read safetensors files (header in memory, each tensor read from the file when asked; what Open does above
// InMemoryLimit, for multi-gigabyte Stable Diffusion weights): every name, shape, dtype, metadata entry and tensor
// equals the in-memory reading, and a file that is truncated or changed after the header is refused as before.
using DiffuSharp.IO;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.IO;

public class SafeTensorsLazyTests
{
    [Theory]
    [InlineData("clip_text/model.safetensors")]
    [InlineData("clip_text.io.safetensors")]
    [InlineData("pipelines/tiny_sd_single_file.safetensors")]
    [InlineData("pipelines/sd_txt2img.safetensors")]
    public void Lazy_reading_equals_in_memory_reading(string file)
    {
        string path = Path.Combine(TestPaths.Diffusers, file);
        var eager = SafeTensorsFile.Open(path);
        var lazy = SafeTensorsFile.OpenLazy(path);
        Assert.Equal(eager.Names, lazy.Names);
        Assert.Equal(eager.Metadata, lazy.Metadata);
        foreach (var name in eager.Names)
        {
            var (a, b) = (eager.Info(name), lazy.Info(name));
            Assert.Equal((a.DType, a.Begin, a.End), (b.DType, b.Begin, b.End));
            Assert.Equal(a.Shape, b.Shape);
            Assert.Equal(eager.ReadRaw(name), lazy.ReadRaw(name));
            if (a.DType is "F32" or "F64" or "F16" or "BF16") Assert.Equal(eager.ReadFloat32(name), lazy.ReadFloat32(name));
            else Assert.Equal(eager.ReadInt64(name), lazy.ReadInt64(name));
        }
    }

    [Fact]
    public void A_truncated_file_is_refused_when_opened_and_when_it_shrinks_afterwards()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "w.safetensors");
        SafeTensorsWriter.Write(path, [("a", [4], [1f, 2f, 3f, 4f]), ("b", [2], [5f, 6f])]);
        var lazy = SafeTensorsFile.OpenLazy(path);
        using (var fs = new FileStream(path, FileMode.Open)) fs.SetLength(fs.Length - 4);
        var e = Assert.Throws<InvalidDataException>(() => lazy.ReadFloat32("b"));
        Assert.Contains("'b'", e.Message);
        Assert.Contains("shorter", e.Message);
        var e2 = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.OpenLazy(path));
        Assert.Contains("data section", e2.Message);
        Assert.Contains(path, e2.Message);
    }
}

// Where a model's weights come from, by parameter name: a component folder's safetensors file, or a single-file
// checkpoint seen through a name mapping (Pipelines/SingleFileCheckpoint.cs). Modules load from either the same way
// (NN/ModuleLoading.cs). Values are float32 whatever the stored dtype (F32, F16, BF16, F64).
namespace DiffuSharp.IO;

/// <summary>Named float tensors, read on demand.</summary>
public interface ITensorSource
{
    /// <summary>What error messages call this source (a file path, or "file (component)").</summary>
    string SourceName { get; }

    /// <summary>Every tensor name the source offers.</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>True when the source holds a tensor named <paramref name="name"/> (exact, case-sensitive
    /// match).</summary>
    bool Contains(string name);

    /// <summary>The shape the tensor has when read (after any reshape the source applies).</summary>
    int[] Shape(string name);

    /// <summary>The values as float32, row-major.</summary>
    float[] ReadFloat32(string name);
}

/// <summary>The tensors of one safetensors file under their stored names.</summary>
public sealed class SafeTensorsSource(SafeTensorsFile file) : ITensorSource
{
    /// <summary>The opened, validated file.</summary>
    public SafeTensorsFile File { get; } = file;
    /// <summary>The file's path (or the name given when it was opened from bytes), used in error messages.</summary>
    public string SourceName => File.SourceName;
    /// <summary>The tensor names stored in the file's header.</summary>
    public IReadOnlyList<string> Names => File.Names;
    /// <summary>True when the file's header has a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => File.Contains(name);

    /// <summary>The stored shape of tensor <paramref name="name"/>; throws <see cref="InvalidDataException"/> when a
    /// dimension exceeds int.MaxValue.</summary>
    public int[] Shape(string name)
        => File.Info(name).Shape.Select(d => d <= int.MaxValue ? (int)d : throw new InvalidDataException($"{SourceName}: '{name}' has a dimension of {d}")).ToArray();

    /// <summary>The tensor's values converted to float32, row-major, whatever its stored dtype.</summary>
    public float[] ReadFloat32(string name) => File.ReadFloat32(name);

    /// <summary>Opens a safetensors file; a pickle checkpoint (.ckpt, .pt, .pth, .bin) is refused with a message saying to
    /// convert it.</summary>
    public static SafeTensorsSource Open(string path)
    {
        PickleRefusal.ThrowIfPickle(path);
        return new SafeTensorsSource(SafeTensorsFile.Open(path));
    }
}

/// <summary>Refuses PyTorch pickle checkpoints: loading one runs arbitrary code, and this engine reads safetensors only.</summary>
public static class PickleRefusal
{
    static readonly string[] Extensions = [".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"];

    /// <summary>Throws InvalidDataException if the path names a pickle checkpoint.</summary>
    public static void ThrowIfPickle(string path)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (Extensions.Contains(ext))
            throw new InvalidDataException($"{path}: {ext} is a PyTorch pickle checkpoint, which is not read here (unpickling can run arbitrary code); " +
                "convert it to .safetensors first, e.g. with safetensors.torch.save_file(torch.load(path)[\"state_dict\"], \"model.safetensors\")");
    }
}

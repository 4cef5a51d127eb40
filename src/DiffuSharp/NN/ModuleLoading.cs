// Loading a module's parameters from a tensor source (IO/ITensorSource.cs): every parameter must be there with its
// shape, and every tensor of the source must be a parameter unless the caller names it ignorable (buffers such as
// CLIP's position_ids). All of this is checked before any parameter is written, so a bad file leaves the module as it
// was. Each problem is one InvalidDataException naming the tensor and the source. Tensors are read one at a time, so
// a lazily opened file (a 3.4 GB float32 UNet) is never held whole in memory.
using DiffuSharp.IO;

namespace DiffuSharp.NN;

/// <summary>Loading a module's parameters from an <see cref="IO.ITensorSource"/>: everything is checked (names, shapes,
/// extra tensors) before any parameter is written, so a bad file leaves the module as it was.</summary>
public static class ModuleLoading
{
    /// <summary>Copies every parameter of the module from the source (converted to float32). <paramref name="ignorable"/>
    /// says which extra tensors of the source may stay unused; any other extra tensor is an error.</summary>
    public static void LoadFrom(this Module module, ITensorSource source, Func<string, bool>? ignorable = null)
    {
        var mine = module.NamedParameters().ToList();
        var names = mine.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var missing = mine.Where(p => !source.Contains(p.Name)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{source.SourceName}: missing {missing.Count} tensor(s) of the {module.GetType().Name}, e.g. '{missing[0].Name}' {ShapeUtil.Format(missing[0].Param.ShapeSpan)}");
        var extra = source.Names.Where(n => !names.Contains(n) && !(ignorable?.Invoke(n) ?? false)).ToList();
        if (extra.Count > 0)
            throw new InvalidDataException($"{source.SourceName}: {extra.Count} tensor(s) the {module.GetType().Name} does not have, e.g. '{extra[0]}'");
        foreach (var (name, p) in mine)
        {
            var shape = source.Shape(name);
            if (!ShapeUtil.Equal(shape, p.ShapeSpan))
                throw new InvalidDataException($"{source.SourceName}: '{name}' has shape {ShapeUtil.Format(shape)}, the model expects {ShapeUtil.Format(p.ShapeSpan)}");
        }
        foreach (var (name, p) in mine) source.ReadFloat32(name).AsSpan().CopyTo(p.Data);
    }
}

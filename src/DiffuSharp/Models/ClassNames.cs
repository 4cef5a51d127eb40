// The names of a class-conditional model's labels. A model folder may carry them in class_names.txt, one name per
// line in label order (train writes it when its data has names: Fashion-MNIST's ten, or a folder data set's class
// subfolders); sample, eval and serve read it. A 10-class model without the file is taken to be a Fashion-MNIST model
// (the data set the presets and the shipped models use) and gets Fashion-MNIST's names; another has none. Folders
// written before the file existed load as before.
using System.Text;
using DiffuSharp.Data;
using DiffuSharp.IO;

namespace DiffuSharp.Models;

/// <summary>The class names of a model folder (class_names.txt), with Fashion-MNIST's as the fallback for 10-class models.</summary>
public static class ClassNames
{
    /// <summary>The optional file of a model folder: one class name per line, in label order.</summary>
    public const string FileName = "class_names.txt";

    /// <summary>The names in <paramref name="folder"/>'s class_names.txt, or null without the file. The file must
    /// name exactly <paramref name="classCount"/> classes, each once (compared as <see cref="Key"/>), else an
    /// InvalidDataException names it.</summary>
    public static IReadOnlyList<string>? Load(string folder, int classCount)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        var names = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        if (names.Length != classCount)
            throw new InvalidDataException($"{path} names {names.Length} classes, the model has {classCount}");
        Check(names, path);
        return names;
    }

    /// <summary>The model's names: its folder's class_names.txt, else Fashion-MNIST's for a 10-class model, else
    /// null (also for a model without classes).</summary>
    public static IReadOnlyList<string>? For(string folder, ModelConfig config) => For(folder, config.ClassCount);

    /// <summary>The same for a model of <paramref name="classCount"/> classes (null: not class-conditional).</summary>
    public static IReadOnlyList<string>? For(string folder, int? classCount)
    {
        if (classCount is not int k) return null;
        return Load(folder, k) ?? (k == FashionMnist.ClassNames.Count ? FashionMnist.ClassNames : null);
    }

    /// <summary>Writes class_names.txt into <paramref name="folder"/> (atomically).</summary>
    public static void Save(string folder, IReadOnlyList<string> names)
    {
        Check(names, Path.Combine(folder, FileName));
        string text = string.Concat(names.Select(n => n + "\n"));
        AtomicFile.Write(Path.Combine(folder, FileName), s => s.Write(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>Whether <paramref name="names"/> are Fashion-MNIST's, label for label.</summary>
    public static bool AreFashionMnist(IReadOnlyList<string> names) =>
        names.Count == FashionMnist.ClassNames.Count && names.Select(Key).SequenceEqual(FashionMnist.ClassNames.Select(Key));

    /// <summary>How names are compared: letters and digits only, lower case ("Ankle_Boot", "ankle boot" → "ankleboot").</summary>
    public static string Key(string name) => new(name.Where(char.IsLetterOrDigit).Select(char.ToLowerInvariant).ToArray());

    /// <summary>Each name one line, with a letter or digit, and no two alike as <see cref="Key"/>.</summary>
    static void Check(IReadOnlyList<string> names, string path)
    {
        var seen = new Dictionary<string, string>();
        foreach (var name in names)
        {
            if (name.Contains('\n') || name.Contains('\r') || name.Trim() != name || Key(name).Length == 0)
                throw new InvalidDataException($"{path}: class name '{name}' must be one line with a letter or digit and no surrounding spaces");
            if (!seen.TryAdd(Key(name), name))
                throw new InvalidDataException($"{path}: class names '{seen[Key(name)]}' and '{name}' are the same name");
        }
    }
}

// --class LABEL: a number 0..k−1, or a class name. A 10-class model is taken to be a Fashion-MNIST model (the data
// set the presets and the shipped model use), so its classes have Fashion-MNIST's names: "shirt", "ankle boot",
// "t-shirt" … matched without regard to case, spaces, hyphens or underscores ("Ankle_Boot", "ankleboot"), and
// either half of "T-shirt/top". A name the model does not have is one error line listing the names.
using System.Globalization;
using DiffuSharp.Data;

namespace DiffuSharp.Cli;

internal static class ClassLabels
{
    /// <summary>The class names of a model with <paramref name="classCount"/> classes, or null when it has none.</summary>
    public static IReadOnlyList<string>? Names(int classCount) => classCount == FashionMnist.ClassNames.Count ? FashionMnist.ClassNames : null;

    /// <summary>The label that <paramref name="spec"/> (a number or a name) gives in a model with k classes; an
    /// unknown name or a number out of range is a CliException naming the command and listing the choices.</summary>
    public static int Parse(string command, string spec, int k)
    {
        if (int.TryParse(spec, NumberStyles.Integer, CultureInfo.InvariantCulture, out int label))
            return label >= 0 && label < k ? label : throw new CliException($"{command}: --class {label} is not a label of the model; expected 0..{k - 1}{Listing(k)}");
        var names = Names(k);
        string key = Key(spec);
        if (names is not null && key.Length > 0)
            for (int i = 0; i < names.Count; i++)
                if (Key(names[i]) == key || names[i].Split('/').Any(part => Key(part) == key)) return i;
        string known = names is null ? $"the model's {k} classes have no names: pass a label 0..{k - 1}" : $"expected a label 0..{k - 1} or a class name{Listing(k)}";
        throw new CliException($"{command}: --class '{Program.Printable(spec)}' is not a class of the model; {known}");
    }

    /// <summary>"shirt", "Ankle_Boot", "ankle-boot" → "shirt", "ankleboot", "ankleboot".</summary>
    static string Key(string name) => new(name.Where(char.IsLetterOrDigit).Select(char.ToLowerInvariant).ToArray());

    static string Listing(int k) => Names(k) is { } names
        ? ": " + string.Join(", ", names.Select((n, i) => $"{i} {n.ToLowerInvariant()}"))
        : "";
}

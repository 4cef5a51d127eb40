// --class LABEL: a number 0..k−1, or a class name. The names are the model folder's (class_names.txt, written by train
// when its data names its classes); a 10-class model without them is taken to be a Fashion-MNIST model (the data set
// the presets and the shipped model use) and has Fashion-MNIST's names (Models/ClassNames.cs). Names match without
// regard to case, spaces, hyphens or underscores ("Ankle_Boot", "ankleboot"), and either half of a name with a slash
// ("T-shirt/top"). A name the model does not have is one error line listing the names.
using System.Globalization;
using DiffuSharp.Models;

namespace DiffuSharp.Cli;

internal static class ClassLabels
{
    /// <summary>The label that <paramref name="spec"/> (a number or a name) gives in a model with k classes named
    /// <paramref name="names"/> (null: no names); an unknown name or a number out of range is a CliException naming the
    /// command and listing the choices.</summary>
    public static int Parse(string command, string spec, int k, IReadOnlyList<string>? names)
    {
        if (int.TryParse(spec, NumberStyles.Integer, CultureInfo.InvariantCulture, out int label))
            return label >= 0 && label < k ? label : throw new CliException($"{command}: --class {label} is not a label of the model; expected 0..{k - 1}{Listing(names)}");
        string key = ClassNames.Key(spec);
        if (names is not null && key.Length > 0)
        {
            for (int i = 0; i < names.Count; i++)                              // a whole name first, then half of one
                if (ClassNames.Key(names[i]) == key) return i;
            for (int i = 0; i < names.Count; i++)
                if (names[i].Split('/').Any(part => ClassNames.Key(part) == key)) return i;
        }
        string known = names is null ? $"the model's {k} classes have no names: pass a label 0..{k - 1}" : $"expected a label 0..{k - 1} or a class name{Listing(names)}";
        throw new CliException($"{command}: --class '{Program.Printable(spec)}' is not a class of the model; {known}");
    }

    /// <summary>The class names of the model in <paramref name="modelDir"/> (see <see cref="ClassNames.For"/>).</summary>
    public static IReadOnlyList<string>? Names(string modelDir, ModelConfig config) => ClassNames.For(modelDir, config);

    static string Listing(IReadOnlyList<string>? names) => names is null
        ? ""
        : ": " + string.Join(", ", names.Select((n, i) => $"{i} {n.ToLowerInvariant()}"));
}

// A small, strict command-line parser: every command declares its options (name, help, default), and anything
// else — an unknown option, a missing value, a value of the wrong type or out of range — is a CliException with
// one line that names the option and the command.
// One option style: options are shown (help, errors) in kebab-case (--batch-size, --save-npy), and every option
// also parses with underscores (--batch_size, improved-diffusion's spelling of its flags); a few older names are
// kept as aliases (sample's and eval's --batch is --batch-size). A command declares each option once, in either
// spelling, and reads it by that declared name; Parse rewrites the option tokens of args in place to the declared
// spelling, so a command that looks at its raw args sees one spelling whatever the user typed. Arguments of the
// form @FILE are response files (see ResponseFiles.Expand).
// Why not System.CommandLine: every command's options, checks and one-line errors (command named, did-you-mean,
// options with two values such as --images A B) are written against this parser and its tests; moving nine
// commands at once would change their errors without adding a feature this file lacks. Response files are
// ResponseFiles.cs; completion is scripts/diffusharp-completion.bash, driven by the help this file prints.
using System.Globalization;

namespace DiffuSharp.Cli;

/// <summary>A user error: printed as one line, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);

public sealed record OptionSpec(string Name, string Help, string? Default = null, bool IsFlag = false, string? Value = null);

public sealed class ParsedOptions
{
    readonly Dictionary<string, string> _values;
    readonly HashSet<string> _flags;
    readonly string _command;
    readonly HashSet<string> _given;

    internal ParsedOptions(string command, Dictionary<string, string> values, HashSet<string> flags)
        => (_command, _values, _flags, _given) = (command, values, flags, [.. values.Keys, .. flags]);

    public bool Has(string name) => _values.ContainsKey(name) || _flags.Contains(name);
    /// <summary>True when the command line gave the option (not merely its default).</summary>
    public bool Given(string name) => _given.Contains(name);
    public bool Flag(string name) => _flags.Contains(name);
    public string? String(string name) => _values.GetValueOrDefault(name);
    public string Required(string name) => String(name) ?? throw new CliException($"{_command}: --{OptionParser.Display(name)} is required");

    public int Int(string name, int? min = null, int? max = null)
    {
        var s = Required(name);
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw new CliException($"{_command}: --{OptionParser.Display(name)} expects an integer, got '{s}'");
        if (v < min) throw new CliException($"{_command}: --{OptionParser.Display(name)} must be at least {min}, got {v}");
        if (v > max) throw new CliException($"{_command}: --{OptionParser.Display(name)} must be at most {max}, got {v}");
        return v;
    }

    public long Long(string name)
    {
        var s = Required(name);
        if (!long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v))
            throw new CliException($"{_command}: --{OptionParser.Display(name)} expects an integer, got '{s}'");
        return v;
    }

    public double Double(string name, double? min = null, double? max = null)
    {
        var s = Required(name);
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
            throw new CliException($"{_command}: --{OptionParser.Display(name)} expects a number, got '{s}'");
        if (v < min) throw new CliException($"{_command}: --{OptionParser.Display(name)} must be at least {min?.ToString(CultureInfo.InvariantCulture)}, got {s}");
        if (v > max) throw new CliException($"{_command}: --{OptionParser.Display(name)} must be at most {max?.ToString(CultureInfo.InvariantCulture)}, got {s}");
        return v;
    }

    public bool Bool(string name)
    {
        var s = Required(name).ToLowerInvariant();
        return s switch
        {
            "true" or "1" or "yes" => true,
            "false" or "0" or "no" => false,
            _ => throw new CliException($"{_command}: --{OptionParser.Display(name)} expects true or false, got '{s}'"),
        };
    }

    /// <summary>A comma-separated list of integers, e.g. "1,2,2".</summary>
    public int[] IntList(string name)
    {
        var s = Required(name);
        try { return s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new CliException($"{_command}: --{OptionParser.Display(name)} expects integers separated by commas, got '{s}'"); }
    }

    public double[] DoubleList(string name)
    {
        var s = Required(name);
        try { return s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => double.Parse(p, CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new CliException($"{_command}: --{OptionParser.Display(name)} expects numbers separated by commas, got '{s}'"); }
    }
}

public static class OptionParser
{
    /// <summary>Options renamed into the one style, by declared name: the new name shown, the declared one still parsed.</summary>
    static readonly Dictionary<string, string> Renamed = new() { ["batch"] = "batch-size" };

    /// <summary>How an option is shown in help and errors: kebab-case (batch_size → batch-size; batch → batch-size).</summary>
    public static string Display(string name) => Renamed.GetValueOrDefault(name) ?? name.Replace('_', '-');

    /// <summary>The spelling-free key of an option name: batch-size, batch_size → batch_size.</summary>
    static string Key(string name) => name.Replace('-', '_');

    /// <summary>Every spelling of the specs' options (declared, kebab, underscore, a renamed option's old and new
    /// names) → its spec; a declared name wins over another option's alias.</summary>
    static Dictionary<string, OptionSpec> Lookup(IReadOnlyList<OptionSpec> specs)
    {
        var byKey = new Dictionary<string, OptionSpec>();
        foreach (var s in specs) byKey.TryAdd(Key(s.Name), s);
        foreach (var s in specs) byKey.TryAdd(Key(Display(s.Name)), s);
        return byKey;
    }

    public static ParsedOptions Parse(string command, string[] args, IReadOnlyList<OptionSpec> specs)
    {
        var byKey = Lookup(specs);
        var values = new Dictionary<string, string>();
        var flags = new HashSet<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new CliException($"{command}: unexpected argument '{a}' (options start with --; see 'diffusharp {command} --help')");
            string name = a[2..], value;
            int eq = name.IndexOf('=');
            bool inline = eq >= 0;
            if (inline) { value = name[(eq + 1)..]; name = name[..eq]; }
            else value = "";
            if (!byKey.TryGetValue(Key(name), out var spec))
            {
                var near = specs.Select(s => Display(s.Name)).OrderBy(n => Distance(n, name)).FirstOrDefault();
                string hint = near is not null && Distance(near, name) <= 3 ? $" (did you mean --{near}?)" : "";
                throw new CliException($"{command}: unknown option --{name}{hint}; see 'diffusharp {command} --help'");
            }
            // one spelling from here on: the declared name, in args too (the value is left as typed)
            name = spec.Name;
            args[i] = inline ? $"--{name}={value}" : "--" + name;
            if (spec.IsFlag)
            {
                if (inline) throw new CliException($"{command}: --{Display(name)} is a flag and takes no value");
                flags.Add(name);
                continue;
            }
            if (!inline)
            {
                if (i + 1 >= args.Length) throw new CliException($"{command}: --{Display(name)} needs a value");
                value = args[++i];
            }
            if (values.ContainsKey(name)) throw new CliException($"{command}: --{Display(name)} given twice");
            values[name] = value;
        }
        var parsed = new ParsedOptions(command, values, flags);          // remembers what was given before the defaults
        foreach (var s in specs)
            if (!s.IsFlag && s.Default is not null && !values.ContainsKey(s.Name)) values[s.Name] = s.Default;
        return parsed;
    }

    public static string Help(string command, string summary, IReadOnlyList<OptionSpec> specs)
    {
        var lines = new List<string> { $"usage: diffusharp {command} [options]", "", summary, "", "options:" };
        foreach (var s in specs)
        {
            string left = s.IsFlag ? $"--{Display(s.Name)}" : $"--{Display(s.Name)} {s.Value ?? "VALUE"}";
            string def = s.Default is null || s.IsFlag ? "" : $" (default: {s.Default})";
            lines.Add($"  {left,-28} {s.Help}{def}");
        }
        lines.Add("");
        lines.Add("Options parse with underscores too (--batch-size or --batch_size, improved-diffusion's spelling); @FILE reads more arguments from FILE.");
        return string.Join(Environment.NewLine, lines);
    }

    static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}

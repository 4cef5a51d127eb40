// Response files: an argument @FILE stands for the arguments written in FILE, as in System.CommandLine and most
// compilers. Each line holds arguments separated by spaces; "double" or 'single' quotes keep spaces in one argument;
// a line starting with # is a comment. A file may not name another (no nesting). @@text is the argument @text.
using System.Text;

namespace DiffuSharp.Cli;

internal static class ResponseFiles
{
    public static string[] Expand(string[] args)
    {
        if (!args.Any(a => a.StartsWith('@'))) return args;
        var result = new List<string>();
        foreach (string a in args)
        {
            if (a.StartsWith("@@", StringComparison.Ordinal)) { result.Add(a[1..]); continue; }
            if (!a.StartsWith('@') || a.Length == 1) { result.Add(a); continue; }
            string path = a[1..];
            if (Directory.Exists(path) || !File.Exists(path)) throw new CliException($"response file not found: {path} (an argument starting with @ names a file of arguments; write @@ for a literal @)");
            foreach (string line in File.ReadAllLines(path))
            {
                if (line.TrimStart().StartsWith('#')) continue;
                foreach (string token in Split(line, path))
                {
                    if (token.StartsWith('@') && !token.StartsWith("@@", StringComparison.Ordinal) && token.Length > 1)
                        throw new CliException($"response file {path}: names another response file ({Program.Printable(token)}); they do not nest");
                    result.Add(token.StartsWith("@@", StringComparison.Ordinal) ? token[1..] : token);
                }
            }
        }
        return [.. result];
    }

    /// <summary>One line's arguments: split at unquoted spaces, quotes removed.</summary>
    static List<string> Split(string line, string path)
    {
        var tokens = new List<string>();
        var sb = new StringBuilder();
        bool inToken = false;
        char quote = '\0';
        foreach (char c in line)
        {
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                else sb.Append(c);
            }
            else if (c is '"' or '\'') { quote = c; inToken = true; }
            else if (char.IsWhiteSpace(c))
            {
                if (inToken) { tokens.Add(sb.ToString()); sb.Clear(); inToken = false; }
            }
            else { sb.Append(c); inToken = true; }
        }
        if (quote != '\0') throw new CliException($"response file {path}: a quote ({quote}) is not closed in line: {Program.Printable(line)}");
        if (inToken) tokens.Add(sb.ToString());
        return tokens;
    }
}

// diffusharp-fuzz: runs N mutated inputs through every parser (or --only NAME) and prints a table; every distinct
// failure is minimised and written to --findings DIR (default fuzz-findings/) for a regression test.
//   dotnet run --project src/DiffuSharp.Fuzz -c Release -- 100000 [--seed S] [--only NAME]
//   ... -- --replay NAME FILE      feeds one saved input to one parser and prints what happened
using System.Globalization;

namespace DiffuSharp.Fuzz;

public static class Program
{
    public static int Main(string[] args)
    {
        int n = 1000, seed = 1;
        string? only = null, findingsDir = "fuzz-findings";
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--seed": seed = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--only": only = args[++i]; break;
                case "--findings": findingsDir = args[++i]; break;
                case "--list": foreach (var t in Targets.All) Console.WriteLine(t.Name); return 0;
                case "--replay": return Replay(Targets.Get(args[i + 1]), args[i + 2]);
                default:
                    if (!int.TryParse(args[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out n) || n < 1)
                    {
                        Console.Error.WriteLine($"error: expected a number of inputs per parser, or --seed S, --only NAME, --findings DIR, --list; got '{args[i]}'");
                        return 2;
                    }
                    break;
            }
        }
        var targets = only is null ? Targets.All : [Targets.Get(only)];
        string work = Fuzzer.WorkFolder();
        var reports = new List<FuzzReport>();
        try
        {
            Console.WriteLine($"| parser | inputs | parsed | clean errors | of which ImageSharp faults | anything else | slowest input (ms) | time (s) |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var t in targets)
            {
                var r = Fuzzer.Run(t, n, seed, work);
                reports.Add(r);
                if (r.SlowestMs > 1000 && r.SlowestInput is { } slow)                  // kept for a look: a decoder's worst case
                {
                    Directory.CreateDirectory(findingsDir);
                    File.WriteAllBytes(Path.Combine(findingsDir, $"slowest-{string.Concat(t.Name.Where(char.IsLetterOrDigit))}.bin"), slow);
                }
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {r.Target} | {r.Inputs:N0} | {r.Parsed:N0} | {r.CleanErrors:N0} | {r.DecoderFaults:N0} | {r.Bugs:N0} | {r.SlowestMs:F1} | {r.TotalSeconds:F0} |"));
            }
            var all = reports.SelectMany(r => r.Findings.Select(f => (r.Target, f))).ToList();
            if (all.Count > 0)
            {
                Directory.CreateDirectory(findingsDir);
                Console.WriteLine();
                foreach (var (target, f) in all)
                {
                    byte[] min = Fuzzer.Minimise(Targets.Get(target), f.Input, work);
                    string file = Path.Combine(findingsDir, $"{string.Concat(target.Where(char.IsLetterOrDigit))}-{Math.Abs(f.Signature.GetHashCode()) % 100000}.bin");
                    File.WriteAllBytes(file, min);
                    Console.WriteLine($"{target}: {f.Count}× {f.Signature}: {f.Message.ReplaceLineEndings(" ")[..Math.Min(200, f.Message.Length)]} → {file} ({min.Length} bytes)");
                }
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"\n{reports.Sum(r => r.Inputs):N0} inputs, {reports.Sum(r => r.Bugs):N0} anything else, seed {seed}"));
            return reports.Sum(r => r.Bugs) == 0 ? 0 : 1;
        }
        finally { Directory.Delete(work, recursive: true); }
    }

    static int Replay(FuzzTarget target, string file)
    {
        string work = Fuzzer.WorkFolder();
        try
        {
            target.Setup?.Invoke(work);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var (outcome, error) = Fuzzer.RunOne(target, File.ReadAllBytes(file), Path.Combine(work, target.FileName));
            Console.WriteLine($"{outcome} in {clock.Elapsed.TotalMilliseconds:F0} ms{(error is null ? "" : $": {error.GetType().Name}: {error.Message}")}");
            if (outcome == Outcome.Bug) Console.WriteLine(error!.StackTrace);
            return outcome == Outcome.Bug ? 1 : 0;
        }
        finally { Directory.Delete(work, recursive: true); }
    }
}

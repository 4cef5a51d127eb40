// diffusharp bench: engine micro-benchmarks ("ops") and UNet training/sampling steps ("train"). Prints a table,
// or with --json one {"name", "value", "unit"} object per line, the same names the PyTorch scripts in scripts/ use.
using System.Globalization;
using DiffuSharp.Kernels;

namespace DiffuSharp.Cli;

public static class BenchCommand
{
    static readonly OptionSpec[] OpsOptions =
    [
        new("json", "print one JSON object per line", IsFlag: true),
        new("quick", "7 samples after 0.3 s of warm-up instead of 15 after 1 s (noisier)", IsFlag: true),
        new("only", "run only benchmarks whose name starts with PREFIX", Value: "PREFIX"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h")
        {
            stdout.WriteLine("usage: diffusharp bench ops [--json] [--quick] [--only PREFIX]\n       diffusharp bench train --preset mnist-s|mnist-m|cifar-s [--json] [--steps N] [--warmup N] [--sample-steps N] [--threads N] [--profile] [--unpooled]\n       diffusharp bench latent [--json] [--batch N] [--steps N] [--threads N]\n       diffusharp bench sd15 [--json] [--only unet|vae|clip] [--repeats N] [--profile] [--kernels]\n       mpirun -n N diffusharp bench allreduce --preset NAME [--iters N] [--json]");
            return 0;
        }
        return args[0] switch
        {
            "ops" => Ops(args[1..], stdout),
            "train" => BenchTrain.Run(args[1..], stdout),
            "sd15" => BenchSd15.Run(args[1..], stdout),
            "latent" => BenchLatent.Run(args[1..], stdout),
            "allreduce" => BenchAllreduce.Run(args[1..], stdout),
            _ => throw new CliException($"bench: unknown benchmark '{args[0]}' (expected 'ops', 'train', 'latent', 'sd15' or 'allreduce')"),
        };
    }

    static int Ops(string[] args, TextWriter stdout)
    {
        var o = OptionParser.Parse("bench ops", args, OpsOptions);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help("bench ops", "Times engine kernels at the sizes the UNet uses.", OpsOptions)); return 0; }
        var report = new Report(stdout, o.Flag("json"), o.String("only"));
        // the protocol of scripts/bench_ops_torch.py: 15 samples after 1 s of warm-up (7 after 0.3 s with --quick)
        bool quick = o.Flag("quick");
        int samples = quick ? 7 : 15;
        double warmup = quick ? 0.3 : 1.0;
        foreach (int n in new[] { 256, 1024, 2048 })
            report.Run($"sgemm_{n}_gflops", "GFLOP/s", () => GemmBench.MeasureGflops(n, n, n, warmupMs: (int)(warmup * 1000), samples: samples));
        // conv2d 3×3, padding 1, batch 32, at the UNet's shapes (scripts/bench_ops_torch.py uses the same names)
        foreach (var (c, size) in new[] { (32, 28), (64, 14), (64, 7) })
            report.RunPair($"conv3x3_c{c}_{size}", () => Conv3x3(c, size, samples, warmup));
        report.RunPair("groupnorm_silu", () => NormBench.GroupNormSilu(samples, warmup));
        report.RunPair("attention", () => NormBench.Attention(samples, warmup));
        report.Finish();
        return 0;
    }

    static (double FwdMs, double FwdBwdMs) Conv3x3(int channels, int size, int samples, double warmupSeconds)
    {
        var rng = new Rng(0);
        var x = Tensor.RandN([32, channels, size, size], rng);
        var w = Tensor.RandN([channels, channels, 3, 3], rng, std: 0.05f);
        var b = Tensor.RandN([channels], rng);
        var g = Tensor.RandN([32, channels, size, size], rng);
        return NormBench.Measure([x, w, b], g, () => Tensor.Conv2d(x, w, b, stride: 1, padding: 1), samples, warmupSeconds);
    }

    /// <summary>Collects results and prints them as a table or as JSON lines.</summary>
    sealed class Report(TextWriter output, bool json, string? only)
    {
        readonly List<(string Name, double Value, string Unit)> _rows = [];

        public void Run(string name, string unit, Func<double> measure)
        {
            if (only is not null && !name.StartsWith(only, StringComparison.Ordinal)) return;
            Add(name, measure(), unit);
        }

        /// <summary>A forward and a forward+backward timing: NAME_fwd_ms and NAME_fwdbwd_ms.</summary>
        public void RunPair(string name, Func<(double FwdMs, double FwdBwdMs)> measure)
        {
            if (only is not null && !name.StartsWith(only, StringComparison.Ordinal) && !only.StartsWith(name, StringComparison.Ordinal)) return;
            var (fwd, fwdBwd) = measure();
            Add($"{name}_fwd_ms", fwd, "ms");
            Add($"{name}_fwdbwd_ms", fwdBwd, "ms");
        }

        void Add(string name, double v, string unit)
        {
            _rows.Add((name, v, unit));
            if (json)
                output.WriteLine($"{{\"name\": \"{name}\", \"value\": {v.ToString("R", CultureInfo.InvariantCulture)}, \"unit\": \"{unit}\"}}");
        }

        public void Finish()
        {
            if (json) return;
            output.WriteLine($"{"benchmark",-32} {"value",12}  unit");
            foreach (var (name, v, unit) in _rows)
                output.WriteLine($"{name,-32} {v.ToString("F2", CultureInfo.InvariantCulture),12}  {unit}");
        }
    }
}

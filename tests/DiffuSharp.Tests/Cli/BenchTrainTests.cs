// diffusharp bench train: a run on the tiny preset at batch 2 prints the five measures as JSON lines with the
// names and units that scripts/compare_train.sh joins with the PyTorch script's output.
using System.Globalization;
using System.Text.Json;
using Xunit;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class BenchTrainTests
{
    [Fact]
    public void Tiny_run_prints_every_measure_as_a_json_line()
    {
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(
            ["bench", "train", "--preset", "tiny", "--steps", "2", "--warmup", "0", "--sample-steps", "1", "--batch", "2", "--json"]);
        Assert.True(code == 0, stderr);
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => JsonDocument.Parse(l).RootElement).ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal(["train_step_ms", "sample_step_ms", "peak_rss_mb", "gen2_per_100_steps", "alloc_mb_per_step"], rows.Keys);
        var units = rows.ToDictionary(r => r.Key, r => r.Value.GetProperty("unit").GetString());
        Assert.Equal(["ms", "ms", "MB", "count", "MB"], units.Values);
        foreach (var (name, row) in rows)
        {
            Assert.Equal("tiny", row.GetProperty("preset").GetString());
            double v = row.GetProperty("value").GetDouble();
            if (name == "gen2_per_100_steps") Assert.True(v >= 0 && v % 50 == 0, $"{name} = {v}");   // 2 steps: a multiple of 50
            else Assert.True(v > 0 && double.IsFinite(v), $"{name} = {v}");
        }
        foreach (var name in new[] { "train_step_ms", "sample_step_ms" })
        {
            var r = rows[name];
            double min = r.GetProperty("min").GetDouble(), max = r.GetProperty("max").GetDouble(), median = r.GetProperty("value").GetDouble();
            Assert.True(min <= median && median <= max, $"{name}: {min} <= {median} <= {max}");
        }
        Assert.Equal(2, rows["train_step_ms"].GetProperty("samples").GetInt32());
        // A tiny UNet at batch 2 still allocates activations every step, and the process has at least its model in memory.
        Assert.True(rows["alloc_mb_per_step"].GetProperty("value").GetDouble() > 0.1);
    }

    [Fact]
    public void Table_output_names_the_preset_and_the_measures()
    {
        int threads = DiffuSharp.Kernels.Parallelism.MaxThreads;
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(
            ["bench", "train", "--preset", "tiny", "--steps", "1", "--warmup", "0", "--sample-steps", "1", "--batch", "1", "--threads", "1"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("--preset tiny", stdout);
        Assert.Contains("batch 1, 1 threads", stdout);
        foreach (var name in new[] { "train_step_ms", "sample_step_ms", "peak_rss_mb", "gen2_per_100_steps", "alloc_mb_per_step" })
            Assert.Contains(name, stdout);
        Assert.Equal(threads, DiffuSharp.Kernels.Parallelism.MaxThreads);   // --threads is restored
    }

    [Fact]
    public void Profile_prints_the_time_of_each_op_for_both_steps()
    {
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(
            ["bench", "train", "--preset", "tiny", "--steps", "2", "--warmup", "1", "--sample-steps", "2", "--batch", "2", "--profile"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("training step: ms per step by op", stdout);
        Assert.Contains("sampling step: ms per step by op", stdout);
        var lines = stdout.Split('\n');
        // every convolution by shape, a backward column for training, and the closing sum of each table
        Assert.Contains(lines, l => l.StartsWith("Conv2d 3x3 ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("(AdamW step + zero-grad)", StringComparison.Ordinal));
        var sums = lines.Where(l => l.StartsWith("(sum)", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, sums.Length);
        foreach (var sum in sums)
            Assert.True(double.Parse(sum.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1], CultureInfo.InvariantCulture) > 0, sum);
        Assert.False(DiffuSharp.Autograd.OpProfiler.IsRunning);                         // stopped after the run
    }

    [Fact]
    public void Bench_ops_json_lines_carry_the_names_and_units_of_the_pytorch_script()
    {
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["bench", "ops", "--json", "--quick", "--only", "groupnorm"]);
        Assert.True(code == 0, stderr);
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(["groupnorm_silu_fwd_ms", "groupnorm_silu_fwdbwd_ms"], rows.Select(r => r.GetProperty("name").GetString()));
        foreach (var r in rows)
        {
            Assert.Equal("ms", r.GetProperty("unit").GetString());
            Assert.True(r.GetProperty("value").GetDouble() > 0);
        }
    }
}

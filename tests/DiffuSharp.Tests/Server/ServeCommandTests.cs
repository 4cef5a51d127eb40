// `diffusharp serve` as a user starts it: a separate process that is listening within seconds and prints where, and
// the one-line errors for bad options.
using System.Diagnostics;
using System.Text.Json;
using DiffuSharp.Tests.Cli;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Server;

[Collection("Parallelism")]
public sealed class ServeCommandTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Serve_starts_in_seconds_and_answers_on_loopback()
    {
        string dll = typeof(DiffuSharp.Cli.Program).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet", [dll, "serve", "--port", "0", "--runs", Path.GetTempPath()])
            { RedirectStandardOutput = true, RedirectStandardError = true };
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        try
        {
            var lineTask = process.StandardOutput.ReadLineAsync();
            var line = await lineTask.WaitAsync(TimeSpan.FromSeconds(60));
            double seconds = clock.Elapsed.TotalSeconds;
            output.WriteLine($"{line} ({seconds:F1} s after the process started)");
            Assert.NotNull(line);
            Assert.Matches(@"^DiffuSharp serving \d+ model\(s\) from .*models at http://127\.0\.0\.1:\d+ \(Ctrl-C stops\)$", line);
            string address = line!.Split(" at ")[1].Split(' ')[0];
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            var models = JsonDocument.Parse(await http.GetStringAsync("/api/models")).RootElement;
            Assert.Contains("fashion-mnist", models.EnumerateArray().Select(m => m.GetProperty("name").GetString()));
            Assert.Contains("DiffuSharp", await http.GetStringAsync("/"));
            Assert.True(seconds < 30, $"serve took {seconds:F1} s to listen");
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    [Theory]
    [InlineData("--port", "70000", "error: serve: --port")]
    [InlineData("--models", "/nonexistent/models", "error: serve: --models folder not found: /nonexistent/models")]
    [InlineData("--host", "", "error: serve: --host")]
    public void Bad_options_are_one_error_line(string flag, string value, string message)
    {
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli(["serve", flag, value]);
        Assert.NotEqual(0, code);
        Assert.StartsWith(message, stderr.Trim());
        Assert.Single(stderr.Trim().Split('\n'));
    }
}

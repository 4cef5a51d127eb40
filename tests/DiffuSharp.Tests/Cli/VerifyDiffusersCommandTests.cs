// diffusharp verify-diffusers: the recorded diffusers runs replay (one JSON line per tensor, exit 0), a recording
// changed by a small amount is caught (the tensor named, exit 1), and bad input is one error line.
using System.Text;
using System.Text.Json;
using DiffuSharp.Cli;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public class VerifyDiffusersCommandTests
{
    static string Fixture(string name) => Path.Combine(TestPaths.Diffusers, name);

    static (int Code, string[] Lines, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["verify-diffusers", .. args], stdout, stderr);
        return (code, stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), stderr.ToString());
    }

    [Fact]
    public void Recorded_runs_replay_with_one_json_line_per_tensor()
    {
        var (code, lines, err) = Run(Fixture("sched_euler_sd15.safetensors"), Fixture("unet2d_condition.io.safetensors"),
            Fixture("clip_text.io.safetensors"), Fixture("clip_tokenizer.json"));
        Assert.True(code == 0, err);
        var rows = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(rows, r =>
        {
            Assert.True(r.GetProperty("ok").GetBoolean(), r.ToString());
            Assert.True(r.GetProperty("rel_err").GetDouble() <= r.GetProperty("tol").GetDouble());
        });
        // every step of the scheduler run, the UNet's output, every CLIP output, every tokenizer case
        Assert.Contains(rows, r => r.GetProperty("tensor").GetString() == "step09.prev_sample");
        Assert.Contains(rows, r => r.GetProperty("file").GetString()!.EndsWith("unet2d_condition.io.safetensors") && r.GetProperty("tensor").GetString() == "sample");
        Assert.Contains(rows, r => r.GetProperty("tensor").GetString() == "pooler_output");
        Assert.Contains(rows, r => r.GetProperty("tensor").GetString() == "cases.00.ids");
    }

    [Fact]
    public void A_recording_changed_by_a_small_amount_fails_naming_the_tensor()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "sched_euler_sd15.safetensors");
        File.Copy(Fixture("sched_euler_sd15.safetensors"), path);
        AddToFirstElement(path, "step05.prev_sample", 1e-3f);
        var (code, lines, err) = Run(path);
        Assert.Equal(1, code);
        Assert.Contains("beyond tolerance", err);
        var bad = lines.Select(l => JsonDocument.Parse(l).RootElement).Where(r => !r.GetProperty("ok").GetBoolean())
            .Select(r => r.GetProperty("tensor").GetString()).ToList();
        Assert.Equal(["step05.prev_sample"], bad);
    }

    [Theory]
    [InlineData("", "no FILE given")]
    [InlineData("MISSING", "file not found")]
    [InlineData("TEXT", "not a safetensors")]
    [InlineData("PARITY", "not a recording this command knows")]
    public void Bad_input_is_one_error_line(string arg, string expected)
    {
        using var dir = new TempDir();
        string text = Path.Combine(dir.Path, "notes.safetensors");
        File.WriteAllText(text, "just some text");
        string file = arg switch
        {
            "MISSING" => Path.Combine(dir.Path, "absent.safetensors"),
            "TEXT" => text,
            "PARITY" => Path.Combine(TestPaths.Parity, "diffusion_ref.safetensors"),
            _ => "",
        };
        var (code, lines, err) = Run(file == "" ? [] : [file]);
        Assert.NotEqual(0, code);
        Assert.Empty(lines);
        var errLines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(errLines);
        Assert.StartsWith("error: ", errLines[0]);
        Assert.Contains(expected, errLines[0], StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Adds <paramref name="delta"/> to the first float32 of tensor <paramref name="name"/> in place.</summary>
    static void AddToFirstElement(string path, string name, float delta)
    {
        var bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength));
        var info = header.RootElement.GetProperty(name);
        Assert.Equal("F32", info.GetProperty("dtype").GetString());
        int at = 8 + (int)headerLength + info.GetProperty("data_offsets")[0].GetInt32();
        float v = BitConverter.ToSingle(bytes, at) + delta;
        BitConverter.GetBytes(v).CopyTo(bytes, at);
        File.WriteAllBytes(path, bytes);
    }
}

public class VerifyDiffusersPipelineTests
{
    [Fact]
    public void A_pipeline_run_replays_with_one_line_per_tensor()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["verify-diffusers", Path.Combine(TestPaths.Diffusers, "pipelines", "sd_txt2img.safetensors")], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        var rows = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(15, rows.Count);
        Assert.All(rows, r => Assert.True(r.GetProperty("ok").GetBoolean(), r.ToString()));
        Assert.Equal(["intermediate.prompt_embeds", "step09.latents", "output.image"],
            rows.Select(r => r.GetProperty("tensor").GetString()!).Where(t => t is "intermediate.prompt_embeds" or "step09.latents" or "output.image"));
    }
}

// Bad input to train, sample and bench: a non-zero exit and exactly one "error: …" line on stderr that names the problem,
// never a stack trace.
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class CliErrorTests
{
    [Theory]
    [InlineData("train --bogus 1", "unknown option --bogus")]
    [InlineData("train --steps 0 --preset tiny", "--steps")]
    [InlineData("train --preset huge", "unknown preset")]
    [InlineData("train --preset tiny --data nowhere:x", "unknown --data")]
    [InlineData("train --preset tiny --channel_mult 1,2,4 --image_size 30", "not divisible")]
    [InlineData("train --resume --out /nonexistent/diffusharp-run", "no checkpoint")]
    [InlineData("sample --model /nonexistent/diffusharp-model", "model folder not found")]
    [InlineData("sample --model X --steps 0", "--steps")]
    [InlineData("sample --model X --eta -0.5", "--eta")]
    [InlineData("sample --model X --sampler dpm++9m", "--sampler: unknown sampler 'dpm++9m'")]
    [InlineData("sample --model X --sampler ddim --karras", "--karras applies to the diffusers schedulers")]
    [InlineData("sample --model X --sampler ddpm --spacing leading", "--spacing applies to the diffusers schedulers")]
    [InlineData("sample --model X --sampler unipc --eta 0.5", "--eta applies to --sampler ddim only")]
    [InlineData("sample --model X --sampler euler --spacing sideways", "--spacing must be linspace, leading or trailing")]
    [InlineData("eval --model X --sampler dpm++9m", "eval: --sampler: unknown sampler 'dpm++9m'")]
    [InlineData("eval --model X --sampler ddpm", "--sampler ddpm is not offered here")]
    [InlineData("eval --model X --sampler ddim --karras", "--karras applies to the diffusers schedulers")]
    [InlineData("bench nope", "unknown benchmark 'nope'")]
    [InlineData("bench train", "--preset is required")]
    [InlineData("bench train --preset huge", "unknown preset 'huge'; presets: tiny, mnist-s")]
    [InlineData("bench train --preset tiny --steps 0", "--steps must be at least 1")]
    [InlineData("bench train --preset tiny --steps ten", "--steps expects an integer")]
    [InlineData("bench train --preset tiny --warmup -1", "--warmup must be at least 0")]
    [InlineData("bench train --preset tiny --sample-steps 0", "--sample-steps must be at least 1")]
    [InlineData("bench train --preset tiny --threads 0", "--threads must be at least 1")]
    [InlineData("bench train --preset tiny --batch 0", "--batch-size must be at least 1")]
    [InlineData("bench train --preset tiny --stepz 3", "did you mean --steps")]
    public void Bad_input_is_one_error_line(string commandLine, string expected)
        => TrainSampleEndToEndTests.AssertOneLineError(commandLine.Split(' '), expected);

    [Fact]
    public void Corrupt_or_impossible_model_json_is_one_error_line()
    {
        string dir = TrainingFixtures.TempFolder("badmodel");
        try
        {
            File.WriteAllText(Path.Combine(dir, "model.json"), "{ \"image_size\": 28, ");
            TrainSampleEndToEndTests.AssertOneLineError(["sample", "--model", dir], "not valid JSON");
            File.WriteAllText(Path.Combine(dir, "model.json"), "{ \"image_size\": 30, \"channel_mult\": \"1,2,4\", \"in_channels\": 1, \"num_channels\": 32, \"attention_resolutions\": \"\" }");
            TrainSampleEndToEndTests.AssertOneLineError(["sample", "--model", dir], "not divisible");
            File.WriteAllText(Path.Combine(dir, "model.json"), "{ \"image_size\": 8, \"channel_mult\": \"1,2\", \"in_channels\": 1, \"num_channels\": 32, \"attention_resolutions\": \"\" }");
            TrainSampleEndToEndTests.AssertOneLineError(["sample", "--model", dir], "model.safetensors");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

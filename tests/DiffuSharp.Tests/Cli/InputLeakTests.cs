// The inputs that used to leak a .NET exception (DivideByZero, Overflow, "An item with the same key", "unexpected
// error code", "Destination is too short"), lose the file's name, pass NaN silently, or echo raw control bytes:
// each, as the exact input, now gives one "error:" line naming the file (or the flag) and the problem.
using System.Text.RegularExpressions;
using DiffuSharp.IO;
using DiffuSharp.Tests.Training;
using DiffuSharp.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

[Collection("Parallelism")]
public sealed class InputLeakTests
{
    static void Fails(string[] args, params string[] expected)
    {
        var (code, _, stderr) = TrainSampleEndToEndTests.Cli(args);
        Assert.NotEqual(0, code);
        string line = Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.StartsWith("error: ", line);
        foreach (var e in expected) Assert.True(line.Contains(e, StringComparison.Ordinal), $"'{e}' not in: {line}");
        Assert.DoesNotMatch(@"[A-Za-z]+Exception", line);
        Assert.DoesNotMatch(@"[\x00-\x08\x0b-\x1f\x7f]", line);
    }

    static void EditModelJson(string folder, Func<string, string> edit)
    {
        string path = Path.Combine(folder, "model.json");
        File.WriteAllText(path, edit(File.ReadAllText(path)));
    }

    [Theory]
    [InlineData("\"num_heads_upsample\": -1", "\"num_heads_upsample\": 0", "num_heads_upsample must be -1")]
    [InlineData("\"noise_schedule\": \"linear\"", "\"noise_schedule\": \"\\ud800\"", "lone UTF-16 surrogate")]
    [InlineData("\"noise_schedule\": \"linear\"", "\"noise_schedule\": \"linear\", \"\\ud800\": 1", "lone UTF-16 surrogate")]
    [InlineData("\"channel_mult\": \"1,2\"", "\"channel_mult\": \"1,2000000000\"", "more than the 65536 supported")]
    [InlineData("\"channel_mult\": \"1,2\"", "\"channel_mult\": \"1,99999999999\"", "channel_mult: expected integers")]
    [InlineData("\"channel_mult\": \"1,2\"", "\"channel_mult\": \"1,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2\"", "at most 16")]
    [InlineData("\"image_size\": 8", "\"image_size\": 8, \"image_size\": 16", "image_size")]
    [InlineData("\"noise_schedule\": \"linear\"", "\"noise_schedule\": \"quadratic\"", "\"noise_schedule\" must be")]
    public void A_bad_model_json_names_the_file_and_the_key(string find, string replace, string expected)
    {
        string dir = TrainingFixtures.TempFolder("leak-model");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir);
            EditModelJson(model, s => { Assert.Contains(find, s); return s.Replace(find, replace); });
            Fails(["sample", "--model", model, "--n", "1", "--steps", "1", "--out", Path.Combine(dir, "o.png")], Path.Combine(model, "model.json"), expected);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Non_finite_weights_are_refused_naming_the_tensor()
    {
        string dir = TrainingFixtures.TempFolder("leak-nanweights");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir), path = Path.Combine(model, "model.safetensors");
            var f = SafeTensorsFile.Open(path);
            var tensors = f.Names.Select(n => (n, Array.ConvertAll(f.Info(n).Shape, d => (int)d), f.ReadFloat32(n))).ToList();
            tensors[3].Item3[2] = float.NaN;
            SafeTensorsWriter.Write(path, tensors);
            Fails(["sample", "--model", model, "--n", "1", "--steps", "1", "--out", Path.Combine(dir, "o.png")], path, $"tensor '{tensors[3].n}' holds NaN at index 2");
            Assert.False(File.Exists(Path.Combine(dir, "o.png")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_bad_noise_file_names_the_file()
    {
        string dir = TrainingFixtures.TempFolder("leak-noise");
        try
        {
            string model = CliModelFixture.TinyModelFolder(dir), empty = Path.Combine(dir, "empty.npy"), nan = Path.Combine(dir, "nan.npy");
            Npy.WriteFloat32(empty, [0, 1, 8, 8], []);
            Fails(["sample", "--model", model, "--noise", empty, "--steps", "1", "--out", Path.Combine(dir, "o.png")], empty, "0 samples");
            var z = new float[2 * 64];
            z[64 + 5] = float.NegativeInfinity;
            Npy.WriteFloat32(nan, [2, 1, 8, 8], z);
            Fails(["sample", "--model", model, "--noise", nan, "--steps", "1", "--out", Path.Combine(dir, "o.png")], nan, "value 69 (sample 1) is -inf");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_png_with_a_zlib_preset_dictionary_names_the_file()
    {
        string dir = TrainingFixtures.TempFolder("leak-fdict");
        try
        {
            // An 8×8 gray PNG whose IDAT was compressed with a preset dictionary (Fixtures/make_fdict_png.py).
            string png = Path.Combine(TestPaths.Fixtures, "png", "fdict_8x8.png");
            Fails(["invert", "--model", CliModelFixture.TinyModelFolder(dir), "--image", png, "--steps", "2", "--out", Path.Combine(dir, "o.png")],
                png, "preset dictionary");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Control_bytes_in_a_message_are_escaped_not_sent_to_the_terminal()
    {
        string bad = "/nonexistent/\u001b[2J\u0007\u009b31m";
        Fails(["sample", "--model", bad], "model folder not found", "\\u001b[2J\\u0007\\u009b31m");
    }

    [Theory]
    [InlineData("\"format\": 1", "\"format\": \"1\"", "unsupported checkpoint format")]
    [InlineData("\"format\": 1", "\"format\": 1, \"format\": 1", "trainer.json: not valid JSON")]
    [InlineData("\"s\": [\n        \"", "\"s\": [\n        \"1", "malformed trainer state")]
    public void A_bad_trainer_json_names_the_file(string find, string replace, string expected)
    {
        string dir = TrainingFixtures.TempFolder("leak-trainer");
        try
        {
            var t = new Trainer(TrainingFixtures.TinyModel(), new TrainConfig(BatchSize: 4, EmaRate: "0.9", TotalSteps: 3, OutputFolder: dir, DataSource: "folder:" + TrainSafetyTests.Pngs(dir)), TrainingFixtures.Synthetic());
            t.Step();
            string ckpt = Checkpoint.Save(t, dir), state = Path.Combine(ckpt, "trainer.json");
            string text = File.ReadAllText(state);
            Assert.Contains(find, text);
            File.WriteAllText(state, new Regex(Regex.Escape(find)).Replace(text, replace, 1));
            Fails(["train", "--resume", "--out", dir], state, "the checkpoint manifest");              // caught by the manifest
            File.Delete(Path.Combine(ckpt, CheckpointManifest.FileName));                              // an older checkpoint
            Fails(["train", "--resume", "--out", dir], state, expected);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

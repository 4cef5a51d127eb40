// diffusharp convert: every float32 tensor of a folder's .safetensors files stored as float16 (or bfloat16), other
// files copied; the copy loads with the same component loader and equals the weights rounded to half precision;
// an existing --out, a value beyond float16's range and a missing folder are one error line.
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Cli;

public sealed class ConvertCommandTests
{
    [Fact]
    public void Converts_a_component_folder_to_half_precision()
    {
        using var dir = new TempDir();
        var vae = new AutoencoderKL(VaeGradientTests.Tiny, new Rng(4));
        string src = Path.Combine(dir.Path, "vae"), fp16 = Path.Combine(dir.Path, "vae16"), bf16 = Path.Combine(dir.Path, "vaebf");
        VaeFolder.Save(src, vae.Config, VaeFolder.Weights(vae));
        var (code, stdout, stderr) = TrainSampleEndToEndTests.Cli(["convert", src, "--out", fp16]);
        Assert.True(code == 0, stderr);
        Assert.Contains("1 weight file(s) as F16", stdout);
        Assert.Equal(File.ReadAllText(Path.Combine(src, "config.json")), File.ReadAllText(Path.Combine(fp16, "config.json")));
        var file = SafeTensorsFile.Open(Path.Combine(fp16, VaeFolder.WeightsFile));
        Assert.All(file.Names, n => Assert.Equal("F16", file.Info(n).DType));
        long a = new FileInfo(Path.Combine(src, VaeFolder.WeightsFile)).Length, b = new FileInfo(Path.Combine(fp16, VaeFolder.WeightsFile)).Length;
        Assert.True(b < 0.6 * a, $"{a} → {b} bytes");                   // the JSON header is a large share of so small a file

        var loaded = ComponentLoader.LoadAutoencoderKL(fp16);
        var original = vae.StateDict();
        foreach (var (name, (_, values)) in loaded.StateDict())
            Assert.Equal(original[name].Data.Select(v => (float)(Half)v).ToArray(), values);

        (code, _, stderr) = TrainSampleEndToEndTests.Cli(["convert", src, "--out", bf16, "--dtype", "bf16"]);
        Assert.True(code == 0, stderr);
        var w = SafeTensorsFile.Open(Path.Combine(bf16, VaeFolder.WeightsFile));
        string first = w.Names[0];
        var expected = original[first].Data.Select(v => BitConverter.UInt32BitsToSingle((uint)ConvertCommandBf16(v) << 16)).ToArray();
        Assert.Equal(expected, w.ReadFloat32(first));
    }

    static ushort ConvertCommandBf16(float v) => DiffuSharp.Cli.ConvertCommand.ToBFloat16(v);

    [Fact]
    public void Bfloat16_rounds_to_nearest_even()
    {
        Assert.Equal(0x3F80, ConvertCommandBf16(1f));
        Assert.Equal(0x3F80, ConvertCommandBf16(BitConverter.UInt32BitsToSingle(0x3F808000)));   // tie → even (down)
        Assert.Equal(0x3F82, ConvertCommandBf16(BitConverter.UInt32BitsToSingle(0x3F818000)));   // tie → even (up)
        Assert.Equal(0x3F81, ConvertCommandBf16(BitConverter.UInt32BitsToSingle(0x3F808001)));
        Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)ConvertCommandBf16(float.NaN) << 16)));
    }

    [Fact]
    public void Bad_input_is_one_error_line()
    {
        using var dir = new TempDir();
        string src = Path.Combine(dir.Path, "c");
        Directory.CreateDirectory(src);
        SafeTensorsWriter.Write(Path.Combine(src, "model.safetensors"), [("big", [2], [1f, 1e6f])]);
        TrainSampleEndToEndTests.AssertOneLineError(["convert", src, "--out", Path.Combine(dir.Path, "o")], "tensor 'big' holds 1000000, beyond float16's range");
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "o")));
        TrainSampleEndToEndTests.AssertOneLineError(["convert", src, "--out", src], "already exists");
        TrainSampleEndToEndTests.AssertOneLineError(["convert", Path.Combine(dir.Path, "none"), "--out", Path.Combine(dir.Path, "o2")], "folder not found");
        TrainSampleEndToEndTests.AssertOneLineError(["convert", src, "--out", Path.Combine(dir.Path, "o3"), "--dtype", "int8"], "--dtype must be fp16 or bf16");
    }
}

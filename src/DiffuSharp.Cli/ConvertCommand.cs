// diffusharp convert: a copy of a diffusers or transformers folder (a whole pipeline, a component, a ControlNet) with
// every float32 tensor of its .safetensors files stored as float16 or bfloat16, halving the weights on disk; every
// other file is copied as is. The loaders read F16 and BF16 into float32, as diffusers' from_pretrained does without
// torch_dtype. A value beyond float16's range (±65,504) is refused with its tensor's name rather than stored as
// infinity. The output is written beside the target and renamed into place, so a failed run leaves no half folder.
using System.Buffers.Binary;
using System.Globalization;
using DiffuSharp.IO;
using DiffuSharp.Training;

namespace DiffuSharp.Cli;

public static class ConvertCommand
{
    const string Name = "convert";

    static readonly OptionSpec[] Options =
    [
        new("dtype", "fp16 or bf16", "fp16", Value: "T"),
        new("out", "the converted copy (must not exist)", Value: "DIR"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        string? source = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : null;
        var o = OptionParser.Parse(Name, source is null ? args : args[1..], Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "diffusharp convert DIR --out DIR2 [--dtype fp16|bf16]: the folder with its float32 weights stored as float16 or bfloat16.", Options)); return 0; }
        if (source is null) throw new CliException($"{Name}: give the folder to convert first: diffusharp convert DIR --out DIR2");
        if (!Directory.Exists(source)) throw new CliException($"{Name}: folder not found: {source}");
        string dtype = o.Required("dtype") switch
        {
            "fp16" or "float16" => "F16", "bf16" or "bfloat16" => "BF16",
            var s => throw new CliException($"{Name}: --dtype must be fp16 or bf16, got '{s}'"),
        };
        string target = o.Required("out");
        if (Directory.Exists(target) || File.Exists(target)) throw new CliException($"{Name}: {target} already exists; choose a new --out");
        long before = 0, after = 0;
        int converted = 0;
        RunFolder.Replace(Path.GetFullPath(target), tmp =>
        {
            foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                string rel = Path.GetRelativePath(source, file), dest = Path.Combine(tmp, rel);
                Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
                before += new FileInfo(file).Length;
                if (file.EndsWith(".safetensors", StringComparison.Ordinal)) { Convert(file, dest, dtype); converted++; }
                else File.Copy(file, dest);
                after += new FileInfo(dest).Length;
            }
        });
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {target}: {converted} weight file(s) as {dtype}, {before / 1048576.0:F1} MiB → {after / 1048576.0:F1} MiB"));
        return 0;
    }

    static void Convert(string path, string dest, string dtype)
    {
        var file = SafeTensorsFile.Open(path);
        var tensors = new List<(string, string, long[], byte[])>();
        foreach (var name in file.Names)
        {
            var info = file.Info(name);
            if (info.DType != "F32") { tensors.Add((name, info.DType, info.Shape, file.ReadRaw(name))); continue; }
            var values = file.ReadFloat32(name);
            var raw = new byte[values.Length * 2];
            for (int i = 0; i < values.Length; i++)
            {
                float v = values[i];
                ushort bits;
                if (dtype == "F16")
                {
                    var h = (Half)v;
                    if (Half.IsInfinity(h) && float.IsFinite(v))
                        throw new CliException($"{Name}: {path}: tensor '{name}' holds {v.ToString("R", CultureInfo.InvariantCulture)}, beyond float16's range; use --dtype bf16");
                    bits = BitConverter.HalfToUInt16Bits(h);
                }
                else bits = ToBFloat16(v);
                BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(2 * i), bits);
            }
            tensors.Add((name, dtype, info.Shape, raw));
        }
        SafeTensorsWriter.WriteMixed(dest, tensors, file.Metadata.Count > 0 ? file.Metadata : null);
    }

    /// <summary>bfloat16 by round-to-nearest-even of the float32 bits (as torch's .to(torch.bfloat16)); NaN stays NaN.</summary>
    public static ushort ToBFloat16(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        if (float.IsNaN(v)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}

// Valid inputs the mutators start from, made in code (small, varied: every dtype, colour type, bit depth, version
// and layout the parsers accept) or, for the diffusers configs, the tiny pipelines' own files (Seeds/*.json: copies of
// tests/DiffuSharp.Tests/Fixtures/diffusers/pipelines/tiny_sd_multicontrolnet/{unet,vae,text_encoder,controlnet,
// scheduler}/ configs and its model_index.json, and of Fixtures/diffusers_extra/{unet2d,unet2d_condition}_variants/config.json).
using System.Buffers.Binary;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.Training;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Tiff.Constants;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace DiffuSharp.Fuzz;

public static class Seeds
{
    public static byte[] Resource(string name)
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream(name) ?? throw new FileNotFoundException($"seed resource {name} missing");
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    // ---- tensors ----

    public static byte[] SafeTensorsFile(IEnumerable<(string Name, string DType, long[] Shape, byte[] Data)> tensors, Dictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is not null) header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        var data = new MemoryStream();
        foreach (var t in tensors)
        {
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(data.Length, data.Length + t.Data.Length),
            };
            data.Write(t.Data);
        }
        byte[] h = Encoding.UTF8.GetBytes(header.ToJsonString());
        var len = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, h.Length);
        return [.. len, .. h, .. data.ToArray()];
    }

    public static IReadOnlyList<byte[]> SafeTensors()
    {
        var r = new Random(1);
        byte[] Rand(int n) { var b = new byte[n]; r.NextBytes(b); return b; }
        byte[] F32(int n) => [.. Enumerable.Range(0, n).SelectMany(i => BitConverter.GetBytes(i * 0.25f - 1))];
        return
        [
            SafeTensorsFile([("w", "F32", [2, 3], F32(6)), ("b", "F32", [3], F32(3))]),
            SafeTensorsFile([("half", "F16", [4], Rand(8)), ("bf", "BF16", [2, 2], Rand(8)), ("d", "F64", [2], Rand(16))], new() { ["format"] = "pt" }),
            SafeTensorsFile([("scalar", "F32", [], F32(1)), ("empty", "F32", [0, 4], []), ("i", "I64", [2], Rand(16)), ("u", "U8", [3], Rand(3))]),
            SafeTensorsFile([("exp_avg", "F32", [5], F32(5))], new() { ["adamw_step"] = "12" }),
        ];
    }

    public static byte[] NpyFile(int major, string descr, string shape, byte[] data, bool fortran = false)
    {
        string dict = $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shape}, }}";
        int prefix = major == 1 ? 10 : 12, total = (prefix + dict.Length + 1 + 63) / 64 * 64;
        string header = dict.PadRight(total - prefix - 1) + "\n";
        var b = new List<byte>([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0]);
        var len = new byte[major == 1 ? 2 : 4];
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)header.Length);
        b.AddRange(len);
        b.AddRange(Encoding.Latin1.GetBytes(header));
        b.AddRange(data);
        return [.. b];
    }

    public static IReadOnlyList<byte[]> Npy()
    {
        byte[] f4 = [.. Enumerable.Range(0, 6).SelectMany(i => BitConverter.GetBytes(i * 0.5f))];
        byte[] f8 = [.. Enumerable.Range(0, 4).SelectMany(i => BitConverter.GetBytes(i * 0.5))];
        return [NpyFile(1, "<f4", "(2, 3)", f4), NpyFile(2, "<f4", "(6,)", f4), NpyFile(3, "<f8", "(2, 2)", f8),
                NpyFile(1, "<f4", "()", f4[..4]), NpyFile(1, "<f4", "(1, 1, 2, 3)", f4)];
    }

    // ---- images ----

    static Image8 RandomImage(Random r, int w, int h, int c)
    {
        var px = new byte[w * h * c];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)((i * 37 + r.Next(40)) & 255);
        return new Image8(w, h, c, px);
    }

    static Image<Rgba32> SharpImage(Random r, int w, int h, bool gray = false, bool alpha = false)
    {
        var img = new Image<Rgba32>(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                byte v = (byte)(x * 29 + y * 13 + r.Next(30));
                img[x, y] = gray ? new Rgba32(v, v, v, 255) : new Rgba32(v, (byte)(v * 3), (byte)(255 - v), alpha ? (byte)r.Next(256) : (byte)255);
            }
        return img;
    }

    static byte[] Encode(Image img, IImageEncoder encoder)
    {
        var ms = new MemoryStream();
        img.Save(ms, encoder);
        img.Dispose();
        return ms.ToArray();
    }

    public static IReadOnlyList<byte[]> Png()
    {
        var r = new Random(2);
        var list = new List<byte[]>();
        foreach (var (w, h, c) in new[] { (1, 1, 1), (7, 5, 3), (4, 9, 4), (16, 3, 2), (33, 17, 3) })
            list.Add(Imaging.Png.Encode(RandomImage(r, w, h, c)));
        list.Add(Encode(SharpImage(r, 9, 7), new SixLabors.ImageSharp.Formats.Png.PngEncoder { ColorType = PngColorType.Palette }));
        list.Add(Encode(SharpImage(r, 6, 6), new SixLabors.ImageSharp.Formats.Png.PngEncoder { BitDepth = PngBitDepth.Bit16, ColorType = PngColorType.RgbWithAlpha }));
        list.Add(Encode(SharpImage(r, 11, 10, gray: true), new SixLabors.ImageSharp.Formats.Png.PngEncoder { BitDepth = PngBitDepth.Bit1, ColorType = PngColorType.Grayscale }));
        list.Add(Encode(SharpImage(r, 13, 9), new SixLabors.ImageSharp.Formats.Png.PngEncoder { InterlaceMethod = PngInterlaceMode.Adam7 }));
        return list;
    }

    public static IReadOnlyList<byte[]> Jpeg()
    {
        var r = new Random(3);
        return
        [
            Encode(SharpImage(r, 8, 8), new JpegEncoder { Quality = 90 }),
            Encode(SharpImage(r, 17, 9, gray: true), new JpegEncoder { ColorType = JpegColorType.Luminance }),
            Encode(SharpImage(r, 16, 16), new JpegEncoder { ColorType = JpegColorType.YCbCrRatio444, Quality = 50 }),
            Encode(SharpImage(r, 1, 1), new JpegEncoder()),
        ];
    }

    public static IReadOnlyList<byte[]> Bmp()
    {
        var r = new Random(4);
        return [Encode(SharpImage(r, 5, 4), new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 }),
                Encode(SharpImage(r, 6, 3, alpha: true), new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel32, SupportTransparency = true }),
                Encode(SharpImage(r, 9, 2), new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel8 }),
                Encode(SharpImage(r, 3, 3), new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel16 })];
    }

    public static IReadOnlyList<byte[]> Gif()
    {
        var r = new Random(5);
        var two = SharpImage(r, 6, 5);
        two.Frames.AddFrame(SharpImage(r, 6, 5).Frames.RootFrame);
        return [Encode(SharpImage(r, 7, 7), new GifEncoder()), Encode(two, new GifEncoder()), Encode(SharpImage(r, 1, 2, gray: true), new GifEncoder())];
    }

    public static IReadOnlyList<byte[]> Webp()
    {
        var r = new Random(6);
        return [Encode(SharpImage(r, 8, 6), new WebpEncoder { FileFormat = WebpFileFormatType.Lossy }),
                Encode(SharpImage(r, 5, 7, alpha: true), new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }),
                Encode(SharpImage(r, 3, 3), new WebpEncoder { FileFormat = WebpFileFormatType.Lossless })];
    }

    public static IReadOnlyList<byte[]> Tiff()
    {
        var r = new Random(7);
        return [Encode(SharpImage(r, 6, 5), new TiffEncoder()),
                Encode(SharpImage(r, 7, 3), new TiffEncoder { Compression = TiffCompression.Lzw }),
                Encode(SharpImage(r, 4, 4, gray: true), new TiffEncoder { BitsPerPixel = TiffBitsPerPixel.Bit8 }),
                Encode(SharpImage(r, 9, 2), new TiffEncoder { Compression = TiffCompression.PackBits }),
                Encode(SharpImage(r, 5, 5), new TiffEncoder { Compression = TiffCompression.Deflate })];
    }

    // ---- data sets ----

    public static byte[] IdxImages(int n, int rows, int cols)
    {
        var b = new byte[16 + n * rows * cols];
        BinaryPrimitives.WriteInt32BigEndian(b, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), n);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(12), cols);
        for (int i = 16; i < b.Length; i++) b[i] = (byte)(i * 7);
        return b;
    }

    // ---- JSON files ----

    static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    public static IReadOnlyList<byte[]> ModelJson()
        => [.. Presets.All.Take(4).Select(p => Utf8(p.Model.ToJsonString())),
            Utf8((Presets.All[0].Model with { ClassCond = true, NullClass = true, ClassDropoutProb = 0.1, PredictV = true, SnrGamma = 5 }).ToJsonString())];

    static JsonObject Rng(ulong a) => new()
    {
        ["s"] = new JsonArray([.. Enumerable.Range(0, 4).Select(i => (JsonNode)((a + (ulong)i) * 0x9E3779B97F4A7C15).ToString("x16", CultureInfo.InvariantCulture))]),
        ["has_spare"] = a % 2 == 0, ["spare_bits"] = BitConverter.DoubleToUInt64Bits(0.25).ToString("x16", CultureInfo.InvariantCulture),
    };

    public static JsonObject TrainerState(bool sampler) => new()
    {
        ["format"] = 1, ["step"] = 12,
        ["rngs"] = new JsonObject { ["noise"] = Rng(1), ["timesteps"] = Rng(2) },
        ["data"] = new JsonObject { ["epoch_start_rng"] = Rng(3), ["batches_in_epoch"] = 2, ["epoch"] = 1, ["batch_size"] = 4 },
        ["config"] = new TrainConfig(BatchSize: 4, TotalSteps: 20, ScheduleSampler: sampler ? "loss-second-moment" : "uniform").ToJson(),
        ["sampler"] = sampler ? new JsonObject { ["history"] = new JsonArray("3fd0000000000000", "3fe0000000000000"), ["counts"] = new JsonArray(1, 2) } : null,
    };

    public static IReadOnlyList<byte[]> TrainerJson() => [Utf8(TrainerState(false).ToJsonString()), Utf8(TrainerState(true).ToJsonString())];

    /// <summary>Writes a checkpoint-like folder (model.json, trainer.json, weights) and its manifest.</summary>
    public static void CheckpointFolder(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "model.json"), Presets.All[0].Model.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "trainer.json"), TrainerState(false).ToJsonString());
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), SafeTensors()[0]);
        CheckpointManifest.Write(dir, Presets.All[0].Model.ToJson(), new TrainConfig(BatchSize: 4, TotalSteps: 20).ToJson());
    }

    // ---- tokenizer ----

    // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for U+0100 onwards.
    static string[] ByteSymbols()
    {
        var map = new string[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
            map[b] = (b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174) ? ((char)b).ToString() : ((char)next++).ToString();
        return map;
    }

    static readonly string[] Merges = ["c a", "ca t</w>", "p h", "ph o", "o t", "ot o</w>", "o f</w>", "d o", "do g</w>", "a n", "an d</w>"];

    public static byte[] Vocab()
    {
        var vocab = new JsonObject();
        int id = 0;
        foreach (var s in ByteSymbols()) vocab[s] = id++;
        foreach (var s in ByteSymbols()) vocab[s + "</w>"] = id++;
        foreach (var m in Merges) vocab[m.Replace(" ", "")] = id++;
        vocab["<|startoftext|>"] = id++;
        vocab["<|endoftext|>"] = id++;
        return Utf8(vocab.ToJsonString());
    }

    public static byte[] MergesText() => Utf8("#version: 0.2\n" + string.Join("\n", Merges) + "\n");
}

// Every parser that reads a file a user (or a download) hands to DiffuSharp, as a fuzz target. A new parser gets a
// line here. HTTP request bodies: when the web server lands, add a target whose Parse hands the bytes to the same
// request binder the endpoint uses (in memory, InMemory: true) and whose seeds are valid request bodies; its clean
// error is then the binder's 400-response exception, named in Fuzzer.Classify.
using DiffuSharp.Data;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.NN.Clip;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;
using DiffuSharp.Training;

namespace DiffuSharp.Fuzz;

public static class Targets
{
    /// <summary>Images are decoded with this pixel limit (4 megapixels), so a mutated header cannot make one input cost gigabytes.</summary>
    public const long FuzzPixelLimit = 1 << 22;

    public static IReadOnlyList<FuzzTarget> All { get; } = Build();

    public static FuzzTarget Get(string name) => All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"no fuzz target '{name}'; targets: {string.Join(", ", All.Select(t => t.Name))}");

    static Func<byte[], Random, byte[]> With(Func<byte[], Random, IReadOnlyList<byte[]>, byte[]> mutate, IReadOnlyList<byte[]> seeds) => (b, r) => mutate(b, r, seeds);

    static FuzzTarget Image(string name, string file, IReadOnlyList<byte[]> seeds, Func<byte[], Random, IReadOnlyList<byte[]>, byte[]> mutate)
        => new(name, file, seeds, With(mutate, seeds), (b, path) => ImageFile.Decode(b, path, FuzzPixelLimit), InMemory: true);

    static FuzzTarget Json(string name, string file, IReadOnlyList<byte[]> seeds, Action<byte[], string> parse, Action<string>? setup = null, bool folderNamed = false)
        => new(name, file, seeds, (b, r) => JsonMutator.Mutate(b, r, seeds), parse, setup, FolderNamed: folderNamed);

    static List<FuzzTarget> Build()
    {
        var st = Seeds.SafeTensors();
        var npy = Seeds.Npy();
        var idx = new[] { Seeds.IdxImages(3, 4, 5), Seeds.IdxImages(1, 28, 28), Seeds.IdxImages(0, 2, 2) };
        var idxGz = idx.Select(BinaryMutators.Gzip).ToArray();
        return
        [
            new("safetensors", "x.safetensors", st, With(BinaryMutators.SafeTensors, st), (b, path) => ReadAll(SafeTensorsFile.Parse(b, path)), InMemory: true),
            new("safetensors (lazy)", "x.safetensors", st, With(BinaryMutators.SafeTensors, st), (_, path) => ReadAll(SafeTensorsFile.OpenLazy(path))),
            new("npy", "x.npy", npy, With(BinaryMutators.Npy, npy), (b, path) => Npy.Parse(b, path), InMemory: true),
            Image("PNG", "x.png", Seeds.Png(), ImageMutators.Png),
            Image("JPEG", "x.jpg", Seeds.Jpeg(), ImageMutators.Jpeg),
            Image("BMP", "x.bmp", Seeds.Bmp(), ImageMutators.HeaderInts),
            Image("GIF", "x.gif", Seeds.Gif(), ImageMutators.HeaderInts),
            Image("WebP", "x.webp", Seeds.Webp(), ImageMutators.HeaderInts),
            Image("TIFF", "x.tif", Seeds.Tiff(), ImageMutators.HeaderInts),
            new("IDX", "train-images-idx3-ubyte", idx, With(BinaryMutators.Idx, idx), (_, path) => Idx.Load(path)),
            new("IDX (gzip)", "train-images-idx3-ubyte.gz", idxGz, With(BinaryMutators.Idx, idxGz), (_, path) => Idx.Load(path)),
            Json("model.json", "model.json", Seeds.ModelJson(), (_, path) => ModelConfig.Load(path)),
            Json("trainer.json", "trainer.json", Seeds.TrainerJson(), (_, path) => Checkpoint.ReadTrainerFile(Path.GetDirectoryName(path)!)),
            Json("checkpoint manifest.json", "manifest.json", [ManifestSeed()], (_, path) => CheckpointManifest.Verify(Path.GetDirectoryName(path)!),
                setup: dir => { Seeds.CheckpointFolder(dir); }, folderNamed: true),
            Json("UNet2DCondition config.json", "config.json", [Seeds.Resource("unet2d_condition.json"), Seeds.Resource("unet2d_condition_variant.json")],
                (_, path) => UNet2DConditionConfig.Load(path)),
            Json("UNet2DModel config.json", "config.json", [Seeds.Resource("unet2d.json")], (_, path) => UNet2DConfig.Load(path)),
            Json("AutoencoderKL config.json", "config.json", [Seeds.Resource("autoencoder_kl.json")], (_, path) => AutoencoderKLConfig.Load(path)),
            Json("CLIPTextModel config.json", "config.json", [Seeds.Resource("clip_text.json")], (_, path) => ClipTextConfig.Load(path)),
            Json("ControlNet config.json", "config.json", [Seeds.Resource("controlnet.json")], (_, path) => ControlNetConfig.Load(path)),
            Json("scheduler_config.json", "scheduler_config.json", [Seeds.Resource("scheduler_config.json")], (_, path) => SchedulerConfig.Load(path)),
            Json("model_index.json", "model_index.json", [Seeds.Resource("model_index.json")], (_, path) => ModelIndex.Load(Path.GetDirectoryName(path)!).ControlNets.Count.ToString(),
                setup: PipelineFolder),
            Json("tokenizer vocab.json", "vocab.json", [Seeds.Vocab()], (_, path) => Tokenize(path),
                setup: dir => File.WriteAllBytes(Path.Combine(dir, "merges.txt"), Seeds.MergesText())),
            new("tokenizer merges.txt", "merges.txt", [Seeds.MergesText()], (b, r) => MutateMerges(b, r), (_, path) => Tokenize(path),
                Setup: dir => File.WriteAllBytes(Path.Combine(dir, "vocab.json"), Seeds.Vocab())),
        ];
    }

    static void ReadAll(SafeTensorsFile f)
    {
        foreach (var name in f.Names)
        {
            if (f.Info(name).DType is "F32" or "F16" or "BF16" or "F64") f.ReadFloat32(name);
            else f.ReadRaw(name);
        }
    }

    static byte[] ManifestSeed()
    {
        string dir = Directory.CreateTempSubdirectory("diffusharp-fuzz-seed-").FullName;
        try
        {
            Seeds.CheckpointFolder(dir);
            return File.ReadAllBytes(Path.Combine(dir, CheckpointManifest.FileName));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    static void PipelineFolder(string dir)
    {
        foreach (var sub in new[] { "controlnet", "controlnet_1", "scheduler", "text_encoder", "tokenizer", "unet", "vae" })
            Directory.CreateDirectory(Path.Combine(dir, sub));
    }

    static void Tokenize(string path)
    {
        var tok = ClipTokenizer.FromFolder(Path.GetDirectoryName(path)!);
        tok.Encode("a photo of a cat and a dog, ÉTÉ 東京 💥");
    }

    static byte[] MutateMerges(byte[] seed, Random r)
    {
        var lines = System.Text.Encoding.UTF8.GetString(seed).Split('\n').ToList();
        switch (r.Next(5))
        {
            case 0: lines.Insert(r.Next(lines.Count + 1), new[] { "a", "a b c", " ", "", "x y", "\u0000 \u0001", "#version: 9", "a  b", "\ud800 a" }[r.Next(9)]); break;
            case 1 when lines.Count > 1: lines.RemoveAt(r.Next(lines.Count)); break;
            case 2 when lines.Count > 1: lines.Insert(r.Next(lines.Count), lines[r.Next(lines.Count)]); break;
            case 3: lines = [.. lines.OrderBy(_ => r.Next())]; break;
            default: return Bytes.Mutate(seed, r);
        }
        return System.Text.Encoding.UTF8.GetBytes(string.Join('\n', lines));
    }
}

// Inputs the fuzz harness (src/DiffuSharp.Fuzz) found that escaped as something other than a clean error naming the
// file, minimised by Fuzzer.Minimise (the tokenizer cases rebuilt by hand from the findings). Each must now be an
// InvalidDataException whose message names the file.
using System.Text;
using DiffuSharp.Imaging;
using DiffuSharp.NN.Clip;
using DiffuSharp.Pipelines;
using DiffuSharp.Schedulers;
using DiffuSharp.Text;
using Xunit;

namespace DiffuSharp.Tests.Fuzz;

public sealed class FuzzFindingsTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("diffusharp-fuzz-findings-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    static void CleanError(Action parse, string names)
    {
        var e = Assert.Throws<InvalidDataException>(parse);
        Assert.Contains(names, e.Message);
    }

    [Fact]
    public void Clip_config_with_a_lone_surrogate_names_the_file()
    {
        // was InvalidOperationException "Cannot read incomplete UTF-16 JSON text as string with missing low surrogate"
        string path = Write("config.json", """{"hidden_size":6,"model_type":"\ud800"}""");
        CleanError(() => ClipTextConfig.Load(path), path);
    }

    [Fact]
    public void Scheduler_config_with_a_lone_surrogate_names_the_file()
    {
        string path = Write("scheduler_config.json", """{"_class_name":"PNDMScheduler","beta_schedule":"\udffb"}""");
        CleanError(() => SchedulerConfig.Load(path), path);
    }

    [Fact]
    public void Model_index_with_a_lone_surrogate_names_the_file()
    {
        string path = Write("model_index.json", """{"_class_name":"","_diffusers_version":"\ud800","unet":[null,null]}""");
        CleanError(() => ModelIndex.Load(_dir), path);
    }

    [Fact]
    public void Diffusers_component_config_with_a_lone_surrogate_names_the_file()
    {
        string path = Write("config.json", """{"_class_name":"AutoencoderKL","act_fn":"\ud800"}""");
        CleanError(() => DiffuSharp.NN.Diffusers.AutoencoderKLConfig.Load(path), path);
    }

    [Fact]
    public void Tiff_whose_deflate_data_is_corrupt_names_the_file()
    {
        // was System.IO.Compression's InvalidDataException "The archive entry was compressed using an unsupported
        // compression method." from inside ImageSharp's TIFF decoder, without the file's name
        byte[] tiff = Convert.FromBase64String(
            "SUkqAGAAAAB4nJLye6rXddF+74EMi+k1Jc0SHs9ttx8K/b8qy25q+9QK45kAAACqLgzu61tVOPtiinbjlcDP64DcuqrGNSzBrud3Bf9c09pftehZ7HZVD4AAAwCoCia8DgAAAQQAAQAAAAUAAAABAQQAAQAAAAUAAAACAQMAAwAAAA4BAAADAQMAAQAAAAgAAAAGAQMAAQAAAAIAAAARAQQAAQAAAAgAAAAVAQQAAQAAAAMAAAAWAQQAAQAAAAUAAAAXAQQAAQAAAAAAABoBBQABAAAAFAEAABsBBQABAAAAHAEAABwBAwABAAAAAQAAACgBAwABAAAAAgAAADEBAgALAAAAJAEAAAAAAAAIAAgACABg");
        var e = Assert.Throws<InvalidDataException>(() => ImageFile.Decode(tiff, "scan.tif"));
        Assert.StartsWith("scan.tif: not a valid TIFF image", e.Message);
    }

    // was DivideByZeroException in the divisibility checks of each config's Read
    [Theory]
    [InlineData("controlnet.json", "num_attention_heads", 0)]
    [InlineData("controlnet.json", "norm_num_groups", 0)]
    [InlineData("autoencoder_kl.json", "norm_num_groups", 0)]
    [InlineData("unet2d_condition.json", "norm_num_groups", 0)]
    public void Diffusers_config_with_a_zero_divisor_names_the_file_and_key(string seed, string key, int value)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(DiffuSharp.Fuzz.Seeds.Resource(seed))!.AsObject();
        json[key] = value;
        string path = Write("config.json", json.ToJsonString());
        Action load = seed switch
        {
            "controlnet.json" => () => DiffuSharp.NN.Diffusers.ControlNetConfig.Load(path),
            "autoencoder_kl.json" => () => DiffuSharp.NN.Diffusers.AutoencoderKLConfig.Load(path),
            _ => () => DiffuSharp.NN.Diffusers.UNet2DConditionConfig.Load(path),
        };
        var e = Assert.Throws<InvalidDataException>(load);
        Assert.Contains(path, e.Message);
        Assert.Contains(key, e.Message);
    }

    [Fact]
    public void Unet2d_condition_config_with_two_billion_layers_per_block_names_the_key()
    {
        // was OutOfMemoryException "Array dimensions exceeded supported range" in ConfigJson.NestedPerBlock
        var json = System.Text.Json.Nodes.JsonNode.Parse(DiffuSharp.Fuzz.Seeds.Resource("unet2d_condition.json"))!.AsObject();
        json["layers_per_block"] = int.MaxValue;
        string path = Write("config.json", json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => DiffuSharp.NN.Diffusers.UNet2DConditionConfig.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("layers_per_block", e.Message);
    }

    [Theory]
    [InlineData("norm_num_groups")]
    [InlineData("attention_head_dim")]
    public void Unet2d_config_with_a_zero_divisor_names_the_file_and_key(string key)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(DiffuSharp.Fuzz.Seeds.Resource("unet2d.json"))!.AsObject();
        json[key] = 0;
        string path = Write("config.json", json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => DiffuSharp.NN.Diffusers.UNet2DConfig.Load(path));
        Assert.Contains(path, e.Message);
        Assert.True(e.Message.Contains(key), e.Message);
    }

    static string Vocab(string extra) => "{\"a\":0,\"b\":1,\"ab</w>\":2,\"a</w>\":3,\"b</w>\":4," + extra + "\"<|startoftext|>\":5,\"<|endoftext|>\":6}";

    [Fact]
    public void Tokenizer_vocab_with_two_tokens_of_one_id_names_the_files()
    {
        // was ArgumentException "An item with the same key has already been added" from Microsoft.ML.Tokenizers
        string vocab = Write("vocab.json", Vocab("\"c\":1,"));
        Write("merges.txt", "#version: 0.2\na b</w>\n");
        CleanError(() => ClipTokenizer.FromFolder(_dir), vocab);
    }

    [Fact]
    public void Tokenizer_merge_of_an_unknown_symbol_names_the_files()
    {
        // was InvalidOperationException "Trying to merge a token 'x' which not exist in the vocabulary"
        Write("vocab.json", Vocab(""));
        string merges = Write("merges.txt", "#version: 0.2\nx b</w>\n");
        CleanError(() => ClipTokenizer.FromFolder(_dir), merges);
    }

    [Fact]
    public void Tokenizer_files_that_fit_still_load()
    {
        Write("vocab.json", Vocab(""));
        Write("merges.txt", "#version: 0.2\na b</w>\n");
        Assert.NotNull(ClipTokenizer.FromFolder(_dir));
    }
}

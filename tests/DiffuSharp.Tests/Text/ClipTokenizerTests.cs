// CLIP tokenizer against transformers' CLIPTokenizer (Fixtures/diffusers/clip_tokenizer.json, no ftfy): for every
// recorded prompt the ids, the tokens, the ids padded to 77 with the end token and with "!" (SD 2.x's pad token)
// and the attention mask are equal; a prompt over 77 tokens is cut to 75 + start/end with the rest reported.
using System.Text.Json;
using DiffuSharp.Tests.Imaging;
using DiffuSharp.Text;
using Xunit;

namespace DiffuSharp.Tests.Text;

public class ClipTokenizerTests
{
    static string Dir => Path.Combine(TestPaths.Diffusers, "clip_tokenizer");
    static readonly Lazy<ClipTokenizer> Eos = new(() => new ClipTokenizer(Path.Combine(Dir, "vocab.json"), Path.Combine(Dir, "merges.txt")));
    static readonly Lazy<ClipTokenizer> Bang = new(() => new ClipTokenizer(Path.Combine(Dir, "vocab.json"), Path.Combine(Dir, "merges.txt"), padToken: "!"));

    sealed record Case(string Prompt, int[] Ids, string[] Tokens, int[] PadEos, int[] PadBang, int[] Mask);

    static readonly Lazy<List<Case>> Cases = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Diffusers, "clip_tokenizer.json")));
        int[] Ints(JsonElement c, string k) => c.GetProperty(k).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(c.GetProperty("prompt").GetString()!,
            Ints(c, "ids"), c.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()!).ToArray(),
            Ints(c, "input_ids_pad_eos_77"), Ints(c, "input_ids_pad_bang_77"), Ints(c, "attention_mask_77"))).ToList();
    });

    public static TheoryData<int> CaseIndices => new(Enumerable.Range(0, 9));

    [Fact]
    public void The_fixture_has_every_case_this_test_expects() => Assert.Equal(9, Cases.Value.Count);

    [Theory, MemberData(nameof(CaseIndices))]
    public void Ids_tokens_and_padding_equal_transformers(int index)
    {
        var c = Cases.Value[index];
        var t = Eos.Value.Encode(c.Prompt);
        bool truncated = c.Ids.Length > 77;
        if (!truncated)
        {
            Assert.Equal(c.Ids, t.Ids);
            Assert.Equal(c.Tokens, t.Tokens);
            Assert.Equal("", t.Truncated);
        }
        else
        {
            // the untruncated encoding equals the recorded one, and the 77 kept are its first 76 and the end token
            var raw = Eos.Value.EncodeRaw(c.Prompt);
            Assert.Equal(c.Ids[1..^1], raw.Select(r => r.Id).ToArray());
            Assert.Equal(c.Tokens[1..^1], raw.Select(r => r.Value).ToArray());
            Assert.Equal([.. c.Ids[..76], 49407], t.Ids);
            Assert.NotEqual("", t.Truncated);
        }
        Assert.Equal(c.PadEos, t.InputIds);
        Assert.Equal(c.Mask, t.AttentionMask);
        Assert.Equal(c.PadBang, Bang.Value.Encode(c.Prompt).InputIds);
    }

    static readonly Lazy<List<(string Prompt, int[] Ids, string[] Tokens, int[] IdsPadBang)>> Extra = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "clip_tokenizer_extra.json")));
        int[] Ints(JsonElement c, string k) => c.GetProperty(k).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => (c.GetProperty("prompt").GetString()!, Ints(c, "ids"),
            c.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()!).ToArray(), Ints(c, "ids_pad_bang"))).ToList();
    });

    public static TheoryData<int> ExtraIndices => new(Enumerable.Range(0, 15));

    /// <summary>Fixtures/clip_tokenizer_extra.json (make_clip_tokenizer_extra.py): letters and digits outside the BMP,
    /// Python's case mapping, NFC, compatibility, control and format characters, whitespace, added tokens in the text,
    /// contractions, scripts without spaces; with "!" as the pad token it is an added token split out of the text.</summary>
    [Theory, MemberData(nameof(ExtraIndices))]
    public void Harder_prompts_equal_transformers(int index)
    {
        Assert.Equal(15, Extra.Value.Count);
        var (prompt, ids, tokens, idsBang) = Extra.Value[index];
        var t = Eos.Value.Encode(prompt);
        Assert.Equal(tokens, t.Tokens);
        Assert.Equal(ids, t.Ids);
        Assert.Equal(idsBang, Bang.Value.Encode(prompt).Ids);
    }

    [Fact]
    public void A_long_prompt_reports_what_was_cut()
    {
        // word0 … word89: 260 tokens; the 75 kept are word0 … word27 (2 + 3 tokens each: digits are single tokens) and
        // the "word" of word28
        var t = Eos.Value.Encode(Cases.Value[8].Prompt);
        Assert.Equal(77, t.Ids.Length);
        Assert.StartsWith("2 8 word 2 9", t.Truncated);
        Assert.EndsWith("word 8 9", t.Truncated);
        Assert.StartsWith("The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: ['2 8 word", t.TruncationWarning);
        Assert.Null(Eos.Value.Encode("a photo of a cat").TruncationWarning);
    }

    [Fact]
    public void Folder_reads_pad_token_and_max_length_from_tokenizer_config()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Dir, "vocab.json"), Path.Combine(dir.Path, "vocab.json"));
        File.Copy(Path.Combine(Dir, "merges.txt"), Path.Combine(dir.Path, "merges.txt"));
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), """{"pad_token": {"content": "!"}, "model_max_length": 10}""");
        var t = ClipTokenizer.FromFolder(dir.Path);
        Assert.Equal(0, t.PadId);
        Assert.Equal([49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, 0], t.Encode("a photo of a cat").InputIds);
        File.Delete(Path.Combine(dir.Path, "merges.txt"));
        var e = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("merges.txt", e.Message);
    }

    [Theory]
    [InlineData("İstanbul", "i̇stanbul")]
    [InlineData("ΟΔΟΣ ΣΑ", "οδος σα")]
    [InlineData("a\u0000b\u200Bc\td\u3000e", "abc d e")]
    [InlineData("日本", "日 本")]
    [InlineData("cafe\u0301", "café")]
    public void Normalizer_follows_BasicTokenizer_and_python_lower(string input, string expected)
        => Assert.Equal(expected, ClipNormalizer.Clean(input));

    [Fact]
    public void Decode_inverts_encode_up_to_normalisation()
        => Assert.Equal("a photo of an astronaut , 8 k 🤗", Eos.Value.Decode(Eos.Value.Encode("A photo of an astronaut, 8k 🤗").Ids));
}

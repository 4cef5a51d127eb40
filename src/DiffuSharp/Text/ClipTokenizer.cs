// CLIP's tokenizer as transformers' CLIPTokenizer (models/clip/tokenization_clip.py, transformers 4.39) without ftfy,
// which is how Stable Diffusion pipelines tokenize where ftfy is not installed: BasicTokenizer's cleanup (control
// characters dropped, whitespace made spaces, spaces around CJK ideographs, NFC — our own UnicodeNfc, since .NET
// normalises nothing in globalization-invariant mode — split on whitespace, lower case),
// then CLIP's pre-tokenizer regex, then byte-level BPE with the "</w>" end-of-word suffix over vocab.json + merges.txt,
// <|startoftext|> (49406) first and <|endoftext|> (49407) last, truncated to model_max_length (77) and padded with
// the tokenizer's pad token. The BPE itself and the byte-to-unicode mapping are Microsoft.ML.Tokenizers' BpeTokenizer
// configured with these rules (it reproduces every fixture id). Our own code: the normalizer, because the library has
// none doing BasicTokenizer's cleanup with Python's case mapping (str.lower maps 'İ' to "i̇" and a word-final 'Σ' to
// 'ς', where .NET's invariant ToLower gives 'i' / 'σ') and NFC (UnicodeNfc.cs); the pre-tokenizer
// (ClipPreTokenizer.cs), because a .NET Regex sees \p{L} per UTF-16 unit and splits letters outside the BMP; and the
// special-token framing, truncation and padding, which transformers does around the BPE.
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace DiffuSharp.Text;

/// <summary>The ids of one prompt: <see cref="Ids"/> unpadded (start and end token included, truncated to the maximum
/// length); <see cref="InputIds"/> padded to it with <see cref="AttentionMask"/> 1 on real tokens;
/// <see cref="Truncated"/> what did not fit, decoded (empty when nothing was cut).</summary>
public sealed record ClipTokens(int[] Ids, string[] Tokens, int[] InputIds, int[] AttentionMask, string Truncated)
{
    /// <summary>diffusers' warning when a prompt was cut, or null: "The following part of your input was truncated
    /// because CLIP can only handle sequences up to 77 tokens: [...]".</summary>
    public string? TruncationWarning => Truncated.Length == 0 ? null
        : $"The following part of your input was truncated because CLIP can only handle sequences up to {InputIds.Length} tokens: ['{Truncated}']";
}

/// <summary>transformers' CLIPTokenizer: prompt → token ids for CLIPTextModel.</summary>
public sealed class ClipTokenizer
{
    const string StartToken = "<|startoftext|>", EndToken = "<|endoftext|>";

    readonly BpeTokenizer _bpe;
    readonly Dictionary<int, string> _tokenOfId;

    /// <summary>Id of &lt;|startoftext|&gt; (49406 in CLIP's vocabulary).</summary>
    public int BosId { get; }
    /// <summary>Id of &lt;|endoftext|&gt; (49407).</summary>
    public int EosId { get; }
    /// <summary>Id used for padding: the end token in SD 1.x folders, "!" (0) in SD 2.x's.</summary>
    public int PadId { get; }
    /// <summary>Positions of the text model: 77.</summary>
    public int MaxLength { get; }

    /// <summary>A tokenizer from a vocab.json (token → id) and merges.txt (a "#version" line, then one "a b" pair per line).</summary>
    /// <param name="padToken">the padding token (tokenizer_config's pad_token), "&lt;|endoftext|&gt;" or "!"</param>
    public ClipTokenizer(string vocabPath, string mergesPath, string padToken = EndToken, int maxLength = 77)
    {
        var vocab = ReadVocab(vocabPath);
        var merges = ReadMerges(mergesPath);
        _tokenOfId = new Dictionary<int, string>(vocab.Count);
        foreach (var (token, id) in vocab) _tokenOfId[id] = token;
        int Id(string token, string what) => vocab.TryGetValue(token, out int id) ? id
            : throw new InvalidDataException($"{vocabPath}: the {what} token '{token}' is not in the vocabulary");
        BosId = Id(StartToken, "start");
        EosId = Id(EndToken, "end");
        PadId = Id(padToken, "padding");
        if (maxLength < 2) throw new ArgumentException($"ClipTokenizer: max length must be at least 2 (start and end token), got {maxLength}");
        MaxLength = maxLength;
        // transformers makes a pad token that is not already special an added token, split out of the text before the
        // BPE: with SD 2.x's "!" a "!!" in a prompt is two "!" (id 0), not the BPE token "!!</w>".
        var special = new Dictionary<string, int> { [StartToken] = BosId, [EndToken] = EosId, [padToken] = PadId };
        // Microsoft.ML.Tokenizers checks that the two files fit together (every merge's symbols in the vocabulary, one
        // token per id) and says so with ArgumentException / InvalidOperationException: named here as the files' fault.
        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges,
                SpecialTokens = special,
                UnknownToken = EndToken,                     // CLIPTokenizer's unk_token
                EndOfWordSuffix = "</w>",
                ByteLevel = true,
                Normalizer = new ClipNormalizer(),
                PreTokenizer = new ClipPreTokenizer(special.Keys),
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{vocabPath} and {mergesPath} do not fit together: {e.Message}");
        }
    }

    /// <summary>Reads a diffusers `tokenizer/` folder: vocab.json, merges.txt and, when present, tokenizer_config.json
    /// (pad_token, model_max_length).</summary>
    public static ClipTokenizer FromFolder(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"tokenizer folder not found: {folder}");
        string vocab = Path.Combine(folder, "vocab.json"), merges = Path.Combine(folder, "merges.txt");
        foreach (var f in new[] { vocab, merges })
            if (!File.Exists(f)) throw new FileNotFoundException($"tokenizer file not found: {f}", f);
        string pad = EndToken;
        int maxLength = 77;
        string configPath = Path.Combine(folder, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(configPath));
                var root = doc.RootElement;
                IO.StrictJson.CheckText(root, configPath);
                if (root.TryGetProperty("pad_token", out var p))
                    pad = p.ValueKind switch
                    {
                        JsonValueKind.String => p.GetString()!,
                        JsonValueKind.Object when p.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString()!,
                        _ => throw new InvalidDataException($"{configPath}: pad_token must be a string, got {p.GetRawText()}"),
                    };
                if (root.TryGetProperty("model_max_length", out var m))
                {
                    // transformers writes a huge sentinel (1e30) when the length is unset: CLIP's 77 then
                    if (m.ValueKind != JsonValueKind.Number) throw new InvalidDataException($"{configPath}: model_max_length must be a number, got {m.GetRawText()}");
                    double v = m.GetDouble();
                    if (v < 2) throw new InvalidDataException($"{configPath}: model_max_length {v} is too small (at least 2)");
                    if (v <= 4096) maxLength = (int)v;
                }
            }
            catch (JsonException e) { throw new InvalidDataException($"{configPath}: not valid JSON: {e.Message}"); }
        }
        return new ClipTokenizer(vocab, merges, pad, maxLength);
    }

    /// <summary>The BPE tokens and ids of a prompt without start/end tokens, truncation or padding.</summary>
    public IReadOnlyList<EncodedToken> EncodeRaw(string prompt) => _bpe.EncodeToTokens(prompt, out _);

    /// <summary>Tokenizes a prompt as CLIPTokenizer(prompt, padding="max_length", max_length, truncation=True): start
    /// token, the first max − 2 BPE tokens, end token, padding. What was cut is in <see cref="ClipTokens.Truncated"/>
    /// (diffusers logs it as a warning).</summary>
    public ClipTokens Encode(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var raw = EncodeRaw(prompt);
        int keep = Math.Min(raw.Count, MaxLength - 2);
        var ids = new int[keep + 2];
        var tokens = new string[keep + 2];
        (ids[0], tokens[0]) = (BosId, StartToken);
        for (int i = 0; i < keep; i++) (ids[i + 1], tokens[i + 1]) = (raw[i].Id, raw[i].Value);
        (ids[^1], tokens[^1]) = (EosId, EndToken);
        var input = new int[MaxLength];
        var mask = new int[MaxLength];
        Array.Fill(input, PadId);
        ids.CopyTo(input, 0);
        Array.Fill(mask, 1, 0, ids.Length);
        string truncated = raw.Count > keep ? Decode(raw.Skip(keep).Select(t => t.Id)) : "";
        return new ClipTokens(ids, tokens, input, mask, truncated);
    }

    /// <summary>Ids back to text: bytes from the byte-level alphabet, "&lt;/w&gt;" as a space (CLIPTokenizer.decode).</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var sb = new StringBuilder();
        foreach (int id in ids)
            if (id != BosId && id != EosId && _tokenOfId.TryGetValue(id, out var token)) sb.Append(token);
        string text = sb.ToString();
        var bytes = new List<byte>(text.Length);
        var decoder = ByteDecoder.Value;
        for (int i = 0; i < text.Length; i++)
        {
            if (string.CompareOrdinal(text, i, "</w>", 0, 4) == 0) { bytes.Add((byte)' '); i += 3; continue; }
            if (decoder.TryGetValue(text[i], out byte b)) bytes.Add(b);
        }
        return Encoding.UTF8.GetString(bytes.ToArray()).Trim();
    }

    /// <summary>GPT-2's bytes_to_unicode, inverted: printable Latin-1 bytes stand for themselves, the other 68 bytes for
    /// U+0100 onwards in byte order.</summary>
    static readonly Lazy<Dictionary<char, byte>> ByteDecoder = new(() =>
    {
        var map = new Dictionary<char, byte>();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[printable ? (char)b : (char)(256 + n++)] = (byte)b;
        }
        return map;
    });

    static Dictionary<string, int> ReadVocab(string path)
    {
        try
        {
            var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(path));
            return vocab is { Count: > 0 } ? vocab : throw new InvalidDataException($"{path}: the vocabulary is empty");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a JSON object of token → id: {e.Message}"); }
    }

    /// <summary>The merge lines CLIPTokenizer reads: after the "#version" line, at most 49152 − 256 − 2 of them.</summary>
    static List<string> ReadMerges(string path)
    {
        var lines = File.ReadAllText(path).Trim().Split('\n');
        var merges = new List<string>(lines.Length);
        for (int i = 1; i < lines.Length && i <= 49152 - 256 - 2; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Split(' ').Length != 2) throw new InvalidDataException($"{path}: line {i + 1} is not a merge of two symbols: '{line}'");
            merges.Add(line);
        }
        return merges;
    }
}

/// <summary>transformers' BasicTokenizer(do_lower_case=True, tokenize_chinese_chars=True, strip_accents=False,
/// do_split_on_punc=False) followed by " ".join: what CLIPTokenizer does to a prompt when ftfy is absent.</summary>
internal sealed class ClipNormalizer : Normalizer
{
    public override string Normalize(string original) => Clean(original);

    public override string Normalize(ReadOnlySpan<char> original) => Clean(original.ToString());

    internal static string Clean(string text)
    {
        // _clean_text (NUL, U+FFFD and control characters dropped, whitespace → ' '), _tokenize_chinese_chars
        var sb = new StringBuilder(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            int cp = rune.Value;
            if (cp == 0 || cp == 0xFFFD || IsControl(rune)) continue;
            if (IsWhitespace(rune)) sb.Append(' ');
            else if (IsCjk(cp)) sb.Append(' ').Append(rune.ToString()).Append(' ');
            else sb.Append(rune.ToString());
        }
        // unicodedata.normalize("NFC"), whitespace_tokenize, token.lower(), " ".join
        string nfc = UnicodeNfc.Normalize(sb.ToString());
        var words = nfc.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        return string.Join(' ', words.Select(PythonLower));
    }

    /// <summary>Python's str.lower: Unicode full lower-case mapping, which differs from the simple mapping for 'İ'
    /// (→ "i̇") and for a capital sigma ending a word (→ 'ς').</summary>
    internal static string PythonLower(string word)
    {
        var sb = new StringBuilder(word.Length);
        for (int i = 0; i < word.Length; i++)
        {
            char c = word[i];
            if (c == '\u0130') sb.Append("i\u0307");
            else if (c == '\u03A3') sb.Append(IsFinalSigma(word, i) ? '\u03C2' : '\u03C3');
            else if (char.IsHighSurrogate(c) && i + 1 < word.Length)
            {
                sb.Append(Rune.ToLowerInvariant(new Rune(c, word[i + 1])).ToString());
                i++;
            }
            else sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    /// <summary>Unicode's Final_Sigma context: a cased letter before (skipping case-ignorable ones) and none after.</summary>
    static bool IsFinalSigma(string w, int at)
    {
        static bool Cased(char c) => char.IsLetter(c) && (char.IsUpper(c) || char.IsLower(c) || CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter);
        static bool Ignorable(char c) => CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol || c is '\'' or '.' or ':' or '\u00B7' or '\u2019';
        int i = at - 1;
        while (i >= 0 && Ignorable(w[i])) i--;
        if (i < 0 || !Cased(w[i])) return false;
        int j = at + 1;
        while (j < w.Length && Ignorable(w[j])) j++;
        return j >= w.Length || !Cased(w[j]);
    }

    /// <summary>BasicTokenizer's _is_whitespace: space, \t, \n, \r, or category Zs.</summary>
    static bool IsWhitespace(Rune r) => r.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    /// <summary>_is_control: any category C* (control, format, unassigned, private use, surrogate) but \t, \n, \r.</summary>
    static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.OtherNotAssigned
            or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate;
    }

    /// <summary>_is_chinese_char: the CJK Unified Ideographs blocks and their extensions / compatibility blocks.</summary>
    static bool IsCjk(int cp) => cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
        or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF
        or >= 0x2F800 and <= 0x2FA1F;
}

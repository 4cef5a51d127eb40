// CLIP's pre-tokenizer on Unicode code points: the added tokens (<|startoftext|>, <|endoftext|>, a pad token such
// as "!") are split out first, as transformers' PreTrainedTokenizer.tokenize does with its trie, then each piece is
// cut as Python's `regex` module runs CLIPTokenizer.pat (case-insensitive):
//     's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// trying the alternatives in order at each position and skipping what none matches (whitespace). Our own rather than
// a .NET Regex because .NET's \p{L} and \p{N} see UTF-16 code units: a letter or digit outside the BMP (𝐀, 𝟏) is
// two surrogates that fall into the "other" class, so "a𝐀b" would split in three where Python keeps one word.
using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace DiffuSharp.Text;

internal sealed class ClipPreTokenizer(IReadOnlyCollection<string> addedTokens) : PreTokenizer
{
    static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    // longest first, so that of two added tokens starting at one place the longer wins (the trie's longest match)
    readonly string[] _added = [.. addedTokens.Where(t => t.Length > 0).OrderByDescending(t => t.Length)];

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text ?? "");

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text.ToString());

    internal List<(int Offset, int Length)> Split(string text)
    {
        var pieces = new List<(int, int)>();
        int start = 0;
        for (int i = 0; i < text.Length;)
        {
            string? hit = _added.FirstOrDefault(t => string.CompareOrdinal(text, i, t, 0, t.Length) == 0);
            if (hit is null) { i++; continue; }
            Pattern(text, start, i, pieces);
            pieces.Add((i, hit.Length));
            i += hit.Length;
            start = i;
        }
        Pattern(text, start, text.Length, pieces);
        return pieces;
    }

    enum Kind { Space, Letter, Number, Other }

    static Kind KindAt(string s, int i, out int width)
    {
        var r = Rune.GetRuneAt(s, i);          // ReplacementChar for a lone surrogate, which is "other", as Python's Cs
        width = r.Utf16SequenceLength;
        if (Rune.IsWhiteSpace(r)) return Kind.Space;
        return Rune.GetUnicodeCategory(r) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Kind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Kind.Number,
            _ => Kind.Other,
        };
    }

    /// <summary>findall(pat, text[begin:end]) without the special-token alternatives (split out before).</summary>
    static void Pattern(string s, int begin, int end, List<(int, int)> pieces)
    {
        for (int i = begin; i < end;)
        {
            string? c = Contractions.FirstOrDefault(t => i + t.Length <= end && string.Compare(s, i, t, 0, t.Length, StringComparison.OrdinalIgnoreCase) == 0);
            if (c is not null) { pieces.Add((i, c.Length)); i += c.Length; continue; }
            var kind = KindAt(s, i, out int w);
            if (kind == Kind.Space) { i += w; continue; }
            int j = i + w;
            if (kind != Kind.Number)                                            // letters and others run on; a number is one
                while (j < end && KindAt(s, j, out int w2) == kind) j += w2;
            pieces.Add((i, j - i));
            i = j;
        }
    }
}

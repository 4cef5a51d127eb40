// NFC against Python's unicodedata.normalize (Fixtures/nfc_cases.json from make_nfc_cases.py, Python 3.11.2, Unicode
// 14.0.0): every code point with a canonical decomposition, decomposed and as itself, marks out of order, blocked
// compositions, Hangul, exclusions and singletons.
using System.Text.Json;
using DiffuSharp.Text;
using Xunit;

namespace DiffuSharp.Tests.Text;

public class UnicodeNfcTests
{
    [Fact]
    public void Matches_python_on_every_case()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "nfc_cases.json")));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => (c[0].GetString()!, c[1].GetString()!)).ToList();
        Assert.True(cases.Count > 4000);
        var wrong = cases.Where(c => UnicodeNfc.Normalize(c.Item1) != c.Item2).ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {cases.Count} differ, e.g. {string.Join("; ", wrong.Take(5).Select(w => $"{Hex(w.Item1)} → {Hex(UnicodeNfc.Normalize(w.Item1))}, expected {Hex(w.Item2)}"))}");
    }

    static string Hex(string s) => string.Join(" ", s.EnumerateRunes().Select(r => $"U+{r.Value:X4}"));

    [Fact]
    public void A_decomposed_prompt_tokenizes_as_the_composed_one()
    {
        string dir = Path.Combine(TestPaths.Diffusers, "clip_tokenizer");
        var t = new ClipTokenizer(Path.Combine(dir, "vocab.json"), Path.Combine(dir, "merges.txt"));
        Assert.Equal(t.Encode("café naïve résumé über Straße").Ids, t.Encode("cafe\u0301 nai\u0308ve re\u0301sume\u0301 u\u0308ber Straße").Ids);
    }
}

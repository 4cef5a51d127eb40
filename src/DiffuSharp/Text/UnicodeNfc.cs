// Unicode normalization form C (UAX #15): full canonical decomposition, canonical ordering of combining marks, then
// canonical composition, with Hangul syllables decomposed and composed arithmetically (Unicode §3.12). Written for
// the CLIP tokenizer, whose reference (transformers' BasicTokenizer) runs unicodedata.normalize("NFC") on every
// prompt; .NET's string.Normalize changes nothing in globalization-invariant mode, which this project runs in. The
// data (UnicodeNfc.Tables.cs) is generated from the Unicode version of the reference's Python (14.0.0).
using System.Text;

namespace DiffuSharp.Text;

internal static partial class UnicodeNfc
{
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28;
    const int NCount = VCount * TCount, SCount = LCount * NCount;

    static readonly Lazy<(Dictionary<int, int> Ccc, Dictionary<int, int[]> Decomp, Dictionary<long, int> Comp)> Data = new(Build);

    static (Dictionary<int, int>, Dictionary<int, int[]>, Dictionary<long, int>) Build()
    {
        var ccc = new Dictionary<int, int>();
        var r = CccRanges;
        for (int i = 0; i < r.Length; i += 3)
            for (int cp = r[i]; cp <= r[i + 1]; cp++) ccc[cp] = r[i + 2];
        var decomp = new Dictionary<int, int[]>();
        var d = Decompositions;
        for (int i = 0; i < d.Length; i += 2 + d[i + 1]) decomp[d[i]] = d.Slice(i + 2, d[i + 1]).ToArray();
        var comp = new Dictionary<long, int>();
        var c = Compositions;
        for (int i = 0; i < c.Length; i += 3) comp[Pair(c[i], c[i + 1])] = c[i + 2];
        return (ccc, decomp, comp);
    }

    static long Pair(int a, int b) => ((long)a << 21) | (uint)b;

    /// <summary>The canonical combining class of a code point (0 for starters).</summary>
    internal static int CombiningClass(int cp) => cp < 0x300 ? 0 : Data.Value.Ccc.GetValueOrDefault(cp);

    /// <summary>NFC of s; strings below U+0300 (no combining marks, nothing to compose) come back unchanged.</summary>
    public static string Normalize(string s)
    {
        bool simple = true;
        foreach (char ch in s) if (ch >= 0x300) { simple = false; break; }
        if (simple) return s;

        // 1. full canonical decomposition (invalid UTF-16 becomes U+FFFD, as EnumerateRunes reads it)
        var (ccc, decomp, comp) = Data.Value;
        var cps = new List<int>(s.Length + 8);
        foreach (var rune in s.EnumerateRunes())
        {
            int cp = rune.Value;
            if (cp is >= SBase and < SBase + SCount)
            {
                int si = cp - SBase;
                cps.Add(LBase + si / NCount);
                cps.Add(VBase + si % NCount / TCount);
                if (si % TCount != 0) cps.Add(TBase + si % TCount);
            }
            else if (decomp.TryGetValue(cp, out var parts)) cps.AddRange(parts);
            else cps.Add(cp);
        }
        // 2. canonical ordering: a stable sort by class within each run of non-starters
        for (int i = 1; i < cps.Count; i++)
        {
            int c = CombiningClass(cps[i]);
            if (c == 0) continue;
            for (int j = i; j > 0 && CombiningClass(cps[j - 1]) > c; j--) (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
        }
        // 3. canonical composition: each mark joins the last starter unless a mark of the same or a higher class, or a
        //    starter, stands between them
        int starter = -1, lastClass = -1;
        var output = new List<int>(cps.Count);
        foreach (int cp in cps)
        {
            int c = CombiningClass(cp);
            if (starter >= 0 && (lastClass < c || lastClass == 0 && output.Count - 1 == starter) && Compose(output[starter], cp, comp) is int composite)
            {
                output[starter] = composite;
                continue;
            }
            if (c == 0) { starter = output.Count; lastClass = 0; }
            else lastClass = c;
            output.Add(cp);
        }
        var sb = new StringBuilder(output.Count + 4);
        foreach (int cp in output) sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    static int? Compose(int a, int b, Dictionary<long, int> comp)
    {
        if (a is >= LBase and < LBase + LCount && b is >= VBase and < VBase + VCount)       // L + V → LV
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a is >= SBase and < SBase + SCount && (a - SBase) % TCount == 0 && b is > TBase and < TBase + TCount)   // LV + T → LVT
            return a + (b - TBase);
        return comp.TryGetValue(Pair(a, b), out int c) ? c : null;
    }
}

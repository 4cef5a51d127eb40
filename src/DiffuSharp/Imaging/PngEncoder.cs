// PNG encoder for 8-bit gray, gray+alpha, RGB and RGBA (PNG specification, third edition, §7.3 filters,
// §11.2 critical chunks). Filter choice per row follows the specification's suggested heuristic (§12.7):
// try all five and keep the one whose output, read as signed bytes, has the smallest sum of absolute values.
// Text chunks (§11.3.3.3 tEXt for Latin-1 text, §11.3.3.5 iTXt, uncompressed UTF-8, otherwise) go between IHDR and
// IDAT, as PIL writes them. No interlacing, no palette output, no other ancillary chunks.
using System.Text;
using System.Buffers.Binary;
using System.IO.Compression;

namespace DiffuSharp.Imaging;

internal static class PngEncoder
{
    /// <summary>Largest IDAT chunk written; bigger streams are split over several chunks.</summary>
    internal const int DefaultIdatChunk = 1 << 20;

    public static byte[] Encode(Image8 img, PngFilter? forced, int maxIdatChunk, IReadOnlyList<(string Keyword, string Text)>? text = null)
    {
        int w = img.Width, h = img.Height, c = img.Channels, stride = w * c;
        byte colorType = c switch { 1 => 0, 2 => 4, 3 => 2, _ => 6 };

        var raw = new MemoryStream();
        using (var zlib = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            var prev = new byte[stride];                            // row above the first is all zeros (§7.3)
            var candidates = new byte[5][];
            for (int f = 0; f < 5; f++) candidates[f] = new byte[1 + stride];
            for (int y = 0; y < h; y++)
            {
                var row = img.Pixels.AsSpan(y * stride, stride);
                byte[] best;
                if (forced is { } only)
                {
                    best = candidates[(int)only];
                    Filter((byte)only, row, prev, c, best);
                }
                else
                {
                    best = candidates[0];
                    long bestScore = long.MaxValue;
                    for (byte f = 0; f < 5; f++)
                    {
                        Filter(f, row, prev, c, candidates[f]);
                        long score = Score(candidates[f]);
                        if (score < bestScore) (bestScore, best) = (score, candidates[f]);
                    }
                }
                zlib.Write(best);
                row.CopyTo(prev);
            }
        }

        var compressed = raw.GetBuffer().AsSpan(0, (int)raw.Length);
        var png = new MemoryStream(compressed.Length + 64 + 12 * (compressed.Length / maxIdatChunk));
        png.Write(Png.Signature);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)w);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr[4..], (uint)h);
        ihdr[8] = 8;                                                // bit depth
        ihdr[9] = colorType;
        ihdr[10] = ihdr[11] = ihdr[12] = 0;                         // deflate, adaptive filtering, no interlace
        WriteChunk(png, "IHDR"u8, ihdr);
        foreach (var (keyword, value) in text ?? [])
            WriteText(png, keyword, value);
        for (int at = 0; at < compressed.Length; at += maxIdatChunk)
            WriteChunk(png, "IDAT"u8, compressed.Slice(at, Math.Min(maxIdatChunk, compressed.Length - at)));
        WriteChunk(png, "IEND"u8, []);
        return png.ToArray();
    }

    static readonly Encoding Latin1 = Encoding.Latin1;

    /// <summary>tEXt: keyword, NUL, Latin-1 text; iTXt when the text is not Latin-1: keyword, NUL, compression flag 0,
    /// method 0, empty language tag and translated keyword (two NULs), UTF-8 text.</summary>
    static void WriteText(Stream png, string keyword, string value)
    {
        if (keyword.Length is < 1 or > 79 || keyword.Any(ch => ch < 32 || ch > 126) || keyword != keyword.Trim() || keyword.Contains("  "))
            throw new ArgumentException($"PNG text keyword must be 1-79 printable Latin-1 characters without leading, trailing or double spaces, got '{keyword}'");
        bool latin1 = value.All(ch => ch <= 255 && ch != 0);
        var data = new List<byte>(Latin1.GetBytes(keyword)) { 0 };
        if (latin1) data.AddRange(Latin1.GetBytes(value));
        else
        {
            data.AddRange([0, 0, 0, 0]);
            data.AddRange(Encoding.UTF8.GetBytes(value));
        }
        WriteChunk(png, latin1 ? "tEXt"u8 : "iTXt"u8, data.ToArray());
    }

    /// <summary>Applies filter <paramref name="f"/> to <paramref name="row"/>; dst[0] = f, dst[1..] = filtered bytes.</summary>
    internal static void Filter(byte f, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prev, int bpp, Span<byte> dst)
    {
        dst[0] = f;
        var o = dst[1..];
        int n = row.Length;
        switch (f)
        {
            case 0:
                row.CopyTo(o);
                break;
            case 1:                                                 // Sub: x − left
                for (int i = 0; i < n; i++) o[i] = (byte)(row[i] - (i >= bpp ? row[i - bpp] : 0));
                break;
            case 2:                                                 // Up: x − above
                for (int i = 0; i < n; i++) o[i] = (byte)(row[i] - prev[i]);
                break;
            case 3:                                                 // Average: x − floor((left + above) / 2)
                for (int i = 0; i < n; i++) o[i] = (byte)(row[i] - (((i >= bpp ? row[i - bpp] : 0) + prev[i]) >> 1));
                break;
            case 4:                                                 // Paeth: x − predictor(left, above, upper-left)
                for (int i = 0; i < n; i++)
                    o[i] = (byte)(row[i] - (i >= bpp ? PngDecoder.Paeth(row[i - bpp], prev[i], prev[i - bpp]) : prev[i]));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(f), $"PNG filter type must be 0..4, got {f}");
        }
    }

    /// <summary>Sum of |filtered byte| with bytes read as signed, the §12.7 heuristic.</summary>
    static long Score(ReadOnlySpan<byte> filtered)
    {
        long s = 0;
        foreach (byte b in filtered[1..]) s += Math.Abs((int)(sbyte)b);
        return s;
    }

    static void WriteChunk(Stream s, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(word, (uint)data.Length);
        s.Write(word);
        uint crc = PngCrc.Update(0xFFFFFFFFu, type);
        crc = PngCrc.Update(crc, data) ^ 0xFFFFFFFFu;
        s.Write(type);
        s.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc);
        s.Write(word);
    }
}

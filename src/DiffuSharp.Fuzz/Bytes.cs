// Byte-level mutations (AFL's menu: bit flips, interesting values, block deletion, insertion, duplication,
// truncation, splicing) that every structure-aware mutator falls back on, and the interesting integers.
using System.Buffers.Binary;

namespace DiffuSharp.Fuzz;

public static class Bytes
{
    /// <summary>Boundaries where size and offset arithmetic goes wrong.</summary>
    public static readonly long[] Interesting =
    [
        0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 100, 127, 128, 255, 256, 257, 511, 512, 1000, 1023, 1024,
        4095, 4096, 16383, 16384, 16385, 32767, 32768, 65535, 65536, 1_000_000, 16_777_216, int.MaxValue, (long)int.MaxValue + 1,
        uint.MaxValue, (long)uint.MaxValue + 1, 1L << 40, long.MaxValue, -1, -2, -128, -32768, int.MinValue, long.MinValue,
    ];

    public static long InterestingValue(Random r) => Interesting[r.Next(Interesting.Length)];

    /// <summary>1 to 4 random byte-level mutations of a copy of <paramref name="input"/>.</summary>
    public static byte[] Mutate(byte[] input, Random r, IReadOnlyList<byte[]>? others = null)
    {
        var b = new List<byte>(input);
        int n = 1 + r.Next(4);
        for (int k = 0; k < n; k++) MutateOnce(b, r, others);
        return [.. b];
    }

    static void MutateOnce(List<byte> b, Random r, IReadOnlyList<byte[]>? others)
    {
        int len = b.Count;
        switch (r.Next(11))
        {
            case 0 when len > 0: b[r.Next(len)] ^= (byte)(1 << r.Next(8)); break;
            case 1 when len > 0: b[r.Next(len)] = (byte)r.Next(256); break;
            case 2 when len > 0: b[r.Next(len)] = (byte)new long[] { 0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x0A }[r.Next(7)]; break;
            case 3 when len > 0:
            {
                int size = new[] { 2, 4, 8 }[r.Next(3)];
                if (len < size) break;
                int at = r.Next(len - size + 1);
                var word = new byte[8];
                long v = InterestingValue(r);
                if (r.Next(2) == 0) BinaryPrimitives.WriteInt64LittleEndian(word, v);
                else BinaryPrimitives.WriteInt64BigEndian(word, v << (8 * (8 - size)));
                for (int i = 0; i < size; i++) b[at + i] = word[i];
                break;
            }
            case 4 when len > 0:
            {
                int at = r.Next(len), count = Math.Min(len - at, 1 + r.Next(Math.Max(1, len / 4)));
                b.RemoveRange(at, count);
                break;
            }
            case 5:
            {
                int at = r.Next(len + 1), count = 1 + r.Next(16);
                var junk = new byte[count];
                r.NextBytes(junk);
                b.InsertRange(at, junk);
                break;
            }
            case 6 when len > 0:
            {
                int from = r.Next(len), count = Math.Min(len - from, 1 + r.Next(64));
                b.InsertRange(r.Next(len + 1), b.GetRange(from, count));
                break;
            }
            case 7 when len > 0:
            {
                int keep = r.Next(len);                              // truncation
                b.RemoveRange(keep, len - keep);
                break;
            }
            case 8:
            {
                var junk = new byte[1 + r.Next(32)];
                r.NextBytes(junk);
                b.AddRange(junk);
                break;
            }
            case 9 when others is { Count: > 0 }:
            {
                var other = others[r.Next(others.Count)];
                int cut = r.Next(len + 1), from = r.Next(other.Length + 1);
                b.RemoveRange(cut, len - cut);
                b.AddRange(other.AsSpan(from).ToArray());
                break;
            }
            default:
                if (len > 1)
                {
                    int from = r.Next(len), to = r.Next(len), count = Math.Min(Math.Min(len - from, len - to), 1 + r.Next(16));
                    var copy = b.GetRange(from, count);
                    for (int i = 0; i < count; i++) b[to + i] = copy[i];
                }
                break;
        }
    }
}

// Structure-aware mutations of image files. PNG: the chunk list (IHDR fields set to boundary values, IDAT inflated,
// its filter bytes and rows mutated and deflated again, chunks dropped, repeated, swapped, split or invented), with
// the CRCs recomputed so the decoder gets past its checksum most of the time. JPEG: the marker segments (SOF sizes,
// component counts and sampling factors, segment lengths, tables) and the entropy-coded data. BMP, GIF, WebP and
// TIFF: boundary integers written over header fields (the first 64 bytes) and anywhere in these tiny files (TIFF's
// IFD entries), in both byte orders.
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using DiffuSharp.Imaging;

namespace DiffuSharp.Fuzz;

public static class ImageMutators
{
    sealed record Chunk(string Type, byte[] Data);

    public static byte[] Png(byte[] seed, Random r, IReadOnlyList<byte[]> others)
    {
        var chunks = ReadChunks(seed);
        if (chunks is null || r.Next(8) == 0) return Bytes.Mutate(seed, r, others);
        int n = 1 + r.Next(2);
        for (int k = 0; k < n; k++) MutatePng(chunks, r);
        return WriteChunks(chunks, fixCrc: r.Next(12) != 0);
    }

    static void MutatePng(List<Chunk> chunks, Random r)
    {
        int i = r.Next(chunks.Count);
        switch (r.Next(9))
        {
            case 0 or 1:                                                      // IHDR fields
                int h = chunks.FindIndex(c => c.Type == "IHDR");
                if (h < 0 || chunks[h].Data.Length != 13) break;
                var d = (byte[])chunks[h].Data.Clone();
                switch (r.Next(6))
                {
                    case 0: BinaryPrimitives.WriteUInt32BigEndian(d, (uint)(r.Next(2) == 0 ? Bytes.InterestingValue(r) : BinaryPrimitives.ReadUInt32BigEndian(d) + (uint)r.Next(-2, 3))); break;
                    case 1: BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), (uint)(r.Next(2) == 0 ? Bytes.InterestingValue(r) : BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(4)) + (uint)r.Next(-2, 3))); break;
                    case 2: d[8] = (byte)new[] { 0, 1, 2, 3, 4, 8, 16, 255 }[r.Next(8)]; break;
                    case 3: d[9] = (byte)new[] { 0, 1, 2, 3, 4, 5, 6, 7, 255 }[r.Next(9)]; break;
                    default: d[10 + r.Next(3)] = (byte)r.Next(3); break;
                }
                chunks[h] = chunks[h] with { Data = d };
                break;
            case 2 or 3:                                                      // the image data, inflated
                int idat = chunks.FindIndex(c => c.Type == "IDAT");
                if (idat < 0) break;
                byte[] all = [.. chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Data)];
                byte[]? raw = Inflate(all);
                if (raw is null) break;
                if (raw.Length > 0 && r.Next(2) == 0) raw[r.Next(raw.Length)] = (byte)r.Next(8);   // often a filter byte
                else raw = Bytes.Mutate(raw, r);
                chunks.RemoveAll(c => c.Type == "IDAT");
                chunks.Insert(Math.Min(idat, chunks.Count), new Chunk("IDAT", Deflate(raw, r.Next(10) == 0)));
                break;
            case 4: chunks.RemoveAt(i); break;
            case 5: chunks.Insert(r.Next(chunks.Count + 1), chunks[i]); break;
            case 6:
                int j = r.Next(chunks.Count);
                (chunks[i], chunks[j]) = (chunks[j], chunks[i]);
                break;
            case 7:                                                           // an invented chunk
                string[] types = ["PLTE", "tRNS", "IDAT", "IEND", "tEXt", "iTXt", "zTXt", "abCD", "ABCD", "gAMA", "IHDR"];
                var data = new byte[new[] { 0, 1, 2, 3, 6, 13, 256 * 3, 769 }[r.Next(8)]];
                r.NextBytes(data);
                chunks.Insert(r.Next(chunks.Count + 1), new Chunk(types[r.Next(types.Length)], data));
                break;
            default: chunks[i] = chunks[i] with { Data = Bytes.Mutate(chunks[i].Data, r) }; break;
        }
    }

    static List<Chunk>? ReadChunks(byte[] b)
    {
        if (b.Length < 8) return null;
        var list = new List<Chunk>();
        int at = 8;
        while (at + 12 <= b.Length)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(at));
            if (len < 0 || at + 12 + len > b.Length) return null;
            list.Add(new Chunk(Encoding.Latin1.GetString(b, at + 4, 4), b[(at + 8)..(at + 8 + len)]));
            at += 12 + len;
        }
        return list;
    }

    static byte[] WriteChunks(List<Chunk> chunks, bool fixCrc)
    {
        var ms = new MemoryStream();
        ms.Write(Imaging.Png.Signature);
        Span<byte> word = stackalloc byte[4];
        foreach (var c in chunks)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, c.Data.Length);
            ms.Write(word);
            byte[] typeAndData = [.. Encoding.Latin1.GetBytes(c.Type), .. c.Data];
            ms.Write(typeAndData);
            BinaryPrimitives.WriteUInt32BigEndian(word, fixCrc ? PngCrc.Compute(typeAndData) : 0xDEADBEEF);
            ms.Write(word);
        }
        return ms.ToArray();
    }

    static byte[]? Inflate(byte[] z)
    {
        try
        {
            using var s = new ZLibStream(new MemoryStream(z), CompressionMode.Decompress);
            var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        }
        catch (InvalidDataException) { return null; }
    }

    static byte[] Deflate(byte[] raw, bool truncate)
    {
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true)) z.Write(raw);
        var b = ms.ToArray();
        return truncate ? b[..(b.Length / 2)] : b;
    }

    /// <summary>JPEG: segments between SOI and SOS (SOF sizes and components, lengths, tables), or the scan data.</summary>
    public static byte[] Jpeg(byte[] seed, Random r, IReadOnlyList<byte[]> others)
    {
        var segs = new List<(int At, byte Marker, int Len)>();
        int at = 2;
        while (at + 4 <= seed.Length && seed[at] == 0xFF)
        {
            byte m = seed[at + 1];
            int len = BinaryPrimitives.ReadUInt16BigEndian(seed.AsSpan(at + 2));
            segs.Add((at, m, len));
            if (m == 0xDA) break;
            at += 2 + len;
        }
        if (segs.Count == 0 || r.Next(6) == 0) return Bytes.Mutate(seed, r, others);
        var b = (byte[])seed.Clone();
        var sof = segs.FindIndex(s => s.Marker is 0xC0 or 0xC1 or 0xC2);
        switch (r.Next(6))
        {
            case 0 or 1 when sof >= 0:                                        // SOF: precision, height, width, components
                int p = segs[sof].At + 4;
                switch (r.Next(5))
                {
                    case 0: b[p] = (byte)new[] { 0, 1, 8, 12, 16, 255 }[r.Next(6)]; break;
                    case 1: BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(p + 1), (ushort)Bytes.InterestingValue(r)); break;
                    case 2: BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(p + 3), (ushort)Bytes.InterestingValue(r)); break;
                    case 3: b[p + 5] = (byte)new[] { 0, 1, 2, 3, 4, 5, 255 }[r.Next(7)]; break;
                    default:
                        int comp = p + 6 + 3 * r.Next(Math.Max(1, (int)b[p + 5]));
                        if (comp + 2 < b.Length) b[comp + 1 + r.Next(2)] = (byte)new[] { 0x00, 0x11, 0x22, 0x44, 0x41, 0x14, 0xFF, 0x03 }[r.Next(8)];
                        break;
                }
                return b;
            case 2:                                                           // a segment length
                var s = segs[r.Next(segs.Count)];
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(s.At + 2), (ushort)(r.Next(2) == 0 ? Bytes.InterestingValue(r) : s.Len + r.Next(-3, 4)));
                return b;
            case 3:                                                           // drop or repeat a segment
                var t = segs[r.Next(segs.Count)];
                int end = Math.Min(b.Length, t.At + 2 + t.Len);
                return r.Next(2) == 0 ? [.. b[..t.At], .. b[end..]] : [.. b[..end], .. b[t.At..end], .. b[end..]];
            case 4:                                                           // inside a segment (tables)
                var u = segs[r.Next(segs.Count)];
                int lo = u.At + 4, hi = Math.Min(b.Length, u.At + 2 + u.Len);
                if (hi > lo) b[lo + r.Next(hi - lo)] = (byte)r.Next(256);
                return b;
            default:                                                          // the entropy-coded data
                int scan = segs[^1].At + 2 + segs[^1].Len;
                if (scan >= b.Length) return Bytes.Mutate(b, r);
                return [.. b[..scan], .. Bytes.Mutate(b[scan..], r)];
        }
    }

    /// <summary>BMP, GIF, WebP, TIFF: boundary integers over header fields or anywhere; else byte-level.</summary>
    public static byte[] HeaderInts(byte[] seed, Random r, IReadOnlyList<byte[]> others)
    {
        if (r.Next(3) == 0 || seed.Length < 8) return Bytes.Mutate(seed, r, others);
        var b = (byte[])seed.Clone();
        int count = 1 + r.Next(3);
        for (int k = 0; k < count; k++)
        {
            int size = new[] { 1, 2, 4 }[r.Next(3)];
            int range = r.Next(3) == 0 ? b.Length : Math.Min(64, b.Length);
            int at = r.Next(Math.Max(1, range - size + 1));
            if (at + size > b.Length) continue;
            long v = r.Next(3) == 0 ? Bytes.InterestingValue(r) : (r.Next(2) == 0 ? b[at] + r.Next(-2, 3) : r.Next(256));
            bool littleEndian = r.Next(2) == 0;
            for (int i = 0; i < size; i++)
                b[at + i] = (byte)(littleEndian ? v >> (8 * i) : v >> (8 * (size - 1 - i)));
        }
        return b;
    }
}

// Test helpers: split a PNG into chunks, build one from chunks with correct CRCs, inflate its IDAT stream.
using System.Buffers.Binary;
using System.IO.Compression;
using DiffuSharp.Imaging;

namespace DiffuSharp.Tests.Imaging;

internal static class PngTestFiles
{
    public static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static List<(string Type, byte[] Data)> Chunks(byte[] png)
    {
        var list = new List<(string, byte[])>();
        for (int pos = 8; pos < png.Length;)
        {
            int n = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            list.Add((System.Text.Encoding.ASCII.GetString(png, pos + 4, 4), png.AsSpan(pos + 8, n).ToArray()));
            pos += 12 + n;
        }
        return list;
    }

    public static byte[] Build(IEnumerable<(string Type, byte[] Data)> chunks)
    {
        var ms = new MemoryStream();
        ms.Write(Signature);
        foreach (var (type, data) in chunks)
        {
            var buf = new byte[12 + data.Length];
            BinaryPrimitives.WriteUInt32BigEndian(buf, (uint)data.Length);
            System.Text.Encoding.ASCII.GetBytes(type, buf.AsSpan(4));
            data.CopyTo(buf, 8);
            BinaryPrimitives.WriteUInt32BigEndian(buf.AsSpan(8 + data.Length), PngCrc.Compute(buf.AsSpan(4, 4 + data.Length)));
            ms.Write(buf);
        }
        return ms.ToArray();
    }

    public static byte[] Ihdr(uint w, uint h, byte depth, byte colorType, byte interlace = 0)
    {
        var d = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(d, w);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), h);
        (d[8], d[9], d[12]) = (depth, colorType, interlace);
        return d;
    }

    /// <summary>A PNG from raw (already filtered) scanline bytes.</summary>
    public static byte[] FromRaw(byte[] ihdr, byte[] raw, params (string, byte[])[] before)
        => Build([("IHDR", ihdr), .. before, ("IDAT", Deflate(raw)), ("IEND", [])]);

    public static byte[] Deflate(byte[] raw)
    {
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true)) z.Write(raw);
        return ms.ToArray();
    }

    public static byte[] InflateIdat(byte[] png)
    {
        var idat = Chunks(png).Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray();
        using var z = new ZLibStream(new MemoryStream(idat), CompressionMode.Decompress);
        var outMs = new MemoryStream();
        z.CopyTo(outMs);
        return outMs.ToArray();
    }
}

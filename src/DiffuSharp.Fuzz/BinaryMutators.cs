// Structure-aware mutations of the tensor and data-set files: safetensors (its JSON header mutated as JSON, the
// length prefix kept right or set to boundary values, the data cut or grown), .npy (the header dict's descr,
// fortran_order and shape, the version and header-length fields) and IDX (magic, dimension count, dimensions; gzip
// either around a mutated file or mutated itself). Each also falls back on byte-level mutation.
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace DiffuSharp.Fuzz;

public static partial class BinaryMutators
{
    public static byte[] SafeTensors(byte[] seed, Random r, IReadOnlyList<byte[]> others)
    {
        if (seed.Length < 8 || r.Next(8) == 0) return Bytes.Mutate(seed, r, others);
        long n = BinaryPrimitives.ReadInt64LittleEndian(seed);
        byte[] header = seed[8..(8 + (int)n)], data = seed[(8 + (int)n)..];
        switch (r.Next(5))
        {
            case 0 or 1: header = JsonMutator.Mutate(header, r); break;
            case 2: data = Bytes.Mutate(data, r); break;
            case 3: data = data[..r.Next(data.Length + 1)]; break;
            default:
                var bad = new byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(bad, r.Next(2) == 0 ? Bytes.InterestingValue(r) : n + r.Next(-9, 10));
                return [.. bad, .. header, .. data];
        }
        var len = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, header.Length);
        return [.. len, .. header, .. data];
    }

    static readonly string[] Descrs = ["'<f4'", "'<f8'", "'>f4'", "'|u1'", "'<i8'", "'<f2'", "'f4'", "'<f16'", "''", "'<f4 '", "4", "None", "('<f4', (2,))", "[('a', '<f4')]"];
    static readonly string[] Shapes = ["()", "(0,)", "(1,)", "(2, 3)", "(3, 2)", "(6,)", "(-1,)", "(2147483648,)", "(4294967296, 4294967296)", "(1, 1, 1, 1, 1, 1, 1, 1, 1, 6)",
        "(2, 3", "[2, 3]", "(2,, 3)", "(2.5,)", "('a',)", "(0, 2147483647)", "(99999999999999999999,)", "(1,)*64"];
    static readonly string[] Fortran = ["True", "False", "0", "1", "'False'", "None", "Tru"];

    [GeneratedRegex("'descr': *('[^']*'|[^,}]*)")] private static partial Regex DescrRe();
    [GeneratedRegex("'shape': *(\\([^)]*\\)|[^,}]*)")] private static partial Regex ShapeRe();
    [GeneratedRegex("'fortran_order': *([A-Za-z0-9']*)")] private static partial Regex FortranRe();

    public static byte[] Npy(byte[] seed, Random r, IReadOnlyList<byte[]> others)
    {
        if (seed.Length < 12 || r.Next(6) == 0) return Bytes.Mutate(seed, r, others);
        int major = seed[6], lenBytes = major == 1 ? 2 : 4;
        int hlen = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(seed.AsSpan(8)) : (int)BinaryPrimitives.ReadUInt32LittleEndian(seed.AsSpan(8));
        string header = Encoding.Latin1.GetString(seed, 8 + lenBytes, hlen);
        byte[] data = seed[(8 + lenBytes + hlen)..];
        switch (r.Next(7))
        {
            case 0: header = DescrRe().Replace(header, "'descr': " + Descrs[r.Next(Descrs.Length)], 1); break;
            case 1: header = ShapeRe().Replace(header, "'shape': " + Shapes[r.Next(Shapes.Length)], 1); break;
            case 2: header = FortranRe().Replace(header, "'fortran_order': " + Fortran[r.Next(Fortran.Length)], 1); break;
            case 3: data = data[..r.Next(data.Length + 1)]; break;
            case 4:
                header = new[] { "{}", "", "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", header.Replace("{", "{'extra': 1, "),
                    header[..r.Next(header.Length)], header.Replace("'", "\""), "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': {'y': [1, (2, {3: 4})]}}" }[r.Next(7)];
                break;
            case 5:                                                           // version and header-length fields
                var b = (byte[])seed.Clone();
                if (r.Next(2) == 0) b[6] = (byte)new[] { 0, 1, 2, 3, 4, 255 }[r.Next(6)];
                else if (r.Next(2) == 0) b[7] = (byte)r.Next(3);
                else BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), (ushort)Bytes.InterestingValue(r));
                return b;
            default: header = Bytes.Mutate(Encoding.Latin1.GetBytes(header), r) is var hb ? Encoding.Latin1.GetString(hb) : header; break;
        }
        byte[] hb2 = Encoding.Latin1.GetBytes(header);
        var prefix = seed[..8];
        var len = new byte[lenBytes];
        if (lenBytes == 2) BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)Math.Min(hb2.Length, ushort.MaxValue));
        else BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)hb2.Length);
        return [.. prefix, .. len, .. hb2, .. data];
    }

    /// <summary>IDX: the plain file's header and data, or (for gzip seeds) the same inside a fresh gzip stream half the
    /// time and byte mutations of the compressed stream the other half.</summary>
    public static byte[] Idx(byte[] seed, Random r, IReadOnlyList<byte[]> others)
    {
        bool gz = seed.Length > 2 && seed[0] == 0x1F && seed[1] == 0x8B;
        if (gz && r.Next(2) == 0) return Bytes.Mutate(seed, r, others);
        byte[] plain = gz ? Gunzip(seed) : seed;
        byte[] m = IdxPlain(plain, r, others);
        return gz ? Gzip(m) : m;
    }

    static byte[] IdxPlain(byte[] b, Random r, IReadOnlyList<byte[]> others)
    {
        if (b.Length < 8 || r.Next(5) == 0) return Bytes.Mutate(b, r, others);
        b = (byte[])b.Clone();
        int ndims = b[3];
        switch (r.Next(5))
        {
            case 0: b[2] = (byte)new[] { 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF }[r.Next(8)]; return b;
            case 1: b[3] = (byte)new[] { 0, 1, 2, 3, 4, 255 }[r.Next(6)]; return b;
            case 2 when ndims > 0:
                int d = r.Next(Math.Min(ndims, (b.Length - 4) / 4));
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4 + 4 * d), (uint)(r.Next(2) == 0 ? Bytes.InterestingValue(r) : BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(4 + 4 * d)) + (uint)r.Next(-2, 3)));
                return b;
            case 3: return b[..r.Next(b.Length + 1)];
            default: return [.. b, .. new byte[1 + r.Next(100)]];
        }
    }

    public static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    static byte[] Gunzip(byte[] data)
    {
        using var gz = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }
}

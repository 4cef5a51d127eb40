// PNG decoder: chunk walk with CRC checks, IHDR/PLTE/tRNS validation, streaming inflate of the IDAT data,
// reversal of the five row filters, Adam7 de-interlacing and conversion of every colour type and bit depth to
// 8-bit samples. Follows the PNG specification, third edition (https://www.w3.org/TR/png-3/), §5 chunks,
// §7 filtering, §8 interlacing, §11 chunk rules. Deliberate deviations: tRNS in a gray+alpha or RGBA file and
// bytes after IEND are ignored (as libpng does); images larger than Png.MaxDimension are refused.
using System.Buffers.Binary;
using System.IO.Compression;

namespace DiffuSharp.Imaging;

internal static class PngDecoder
{
    // Deflate cannot expand data by more than about 1032:1 (a 258-byte match costs at least 2 bits), so an IDAT
    // stream too short for the claimed size is refused before the output is allocated.
    const long MaxInflateRatio = 1032;

    // Adam7 passes (§8.2): x start, y start, x step, y step.
    static readonly (int X, int Y, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    sealed class Header
    {
        public int Width, Height, BitDepth, ColorType;
        public bool Interlaced;
        public byte[]? Palette;          // RGB triples
        public byte[]? PaletteAlpha;     // one alpha per palette entry, from tRNS
        public int[]? ColorKey;          // tRNS gray (1 value) or RGB (3 values), at the file's bit depth

        public int SamplesPerPixel => ColorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        public int BitsPerPixel => SamplesPerPixel * BitDepth;
        public int FilterStride => Math.Max(1, BitsPerPixel / 8);      // "bpp" of §7.3: bytes per complete pixel
        public long RowBytes(int width) => ((long)width * BitsPerPixel + 7) / 8;

        public int OutputChannels => ColorType switch
        {
            0 => ColorKey is null ? 1 : 2,
            2 => ColorKey is null ? 3 : 4,
            3 => PaletteAlpha is null ? 3 : 4,
            4 => 2,
            _ => 4,
        };
    }

    public static Image8 Decode(byte[] bytes, string src, long maxPixels)
    {
        var (header, idat) = ReadChunks(bytes, src);
        ImageFile.CheckSize(src, "PNG", header.Width, header.Height, maxPixels);
        (int X, int Y, int Dx, int Dy)[] passes = header.Interlaced ? Adam7 : [(0, 0, 1, 1)];

        long inflatedSize = 0;
        foreach (var p in passes)
        {
            var (pw, ph) = PassSize(header, p);
            if (pw > 0 && ph > 0) inflatedSize += ph * (1 + header.RowBytes(pw));
        }
        if (inflatedSize > idat.Length * MaxInflateRatio + 1024)
            Png.Fail(src, $"{idat.Length} bytes of IDAT data cannot inflate to the {inflatedSize} bytes a " +
                          $"{header.Width}×{header.Height} image needs (truncated, or the size in IHDR is wrong)");

        // PNG forbids a zlib preset dictionary (FDICT, bit 5 of the second header byte); .NET's inflater fails on it
        // with a bare "unexpected error code", so it is refused here by name.
        if (idat.Length >= 2 && (idat[1] & 0x20) != 0) Png.Fail(src, "IDAT's zlib stream asks for a preset dictionary, which PNG does not allow");
        int channels = header.OutputChannels;
        var pixels = new byte[header.Width * header.Height * channels];
        using var zlib = new ZLibStream(new MemoryStream(idat, writable: false), CompressionMode.Decompress);
        long inflated = 0;
        for (int pass = 0; pass < passes.Length; pass++)
        {
            var (pw, ph) = PassSize(header, passes[pass]);
            if (pw == 0 || ph == 0) continue;                          // empty Adam7 passes have no rows at all
            int rowBytes = (int)header.RowBytes(pw);
            var prev = new byte[rowBytes];
            var cur = new byte[1 + rowBytes];                          // filter type byte, then the filtered row
            for (int j = 0; j < ph; j++)
            {
                int got = Inflate(zlib, cur, src);
                inflated += got;
                if (got < cur.Length)
                    Png.Fail(src, $"image data ends early: inflated {inflated} of {inflatedSize} bytes " +
                                  $"(row {j}{(header.Interlaced ? $" of Adam7 pass {pass + 1}" : "")})");
                var row = cur.AsSpan(1);
                Unfilter(cur[0], row, prev, header.FilterStride, src, j);
                ExpandRow(header, row, pw, pixels, channels, passes[pass], j, src);
                row.CopyTo(prev);
            }
        }
        if (Inflate(zlib, new byte[1], src) > 0)
            Png.Fail(src, $"more image data than the {inflatedSize} bytes a {header.Width}×{header.Height} image needs");
        return new Image8(header.Width, header.Height, channels, pixels);
    }

    static int Inflate(ZLibStream zlib, byte[] buffer, string src)
    {
        try { return zlib.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false); }
        catch (InvalidDataException e) { Png.Fail(src, $"corrupt zlib data in IDAT ({e.Message})"); return 0; }
        catch (IOException e) { Png.Fail(src, $"corrupt zlib data in IDAT ({e.Message})"); return 0; }    // ZLibException
    }

    static (int W, int H) PassSize(Header h, (int X, int Y, int Dx, int Dy) p)
        => ((h.Width - p.X + p.Dx - 1) / p.Dx, (h.Height - p.Y + p.Dy - 1) / p.Dy);

    /// <summary>Walks the chunks, checks CRCs and ordering, returns the header and the concatenated IDAT data.</summary>
    static (Header, byte[]) ReadChunks(byte[] b, string src)
    {
        if (b.Length < 8 || !b.AsSpan(0, 8).SequenceEqual(Png.Signature))
            Png.Fail(src, b.Length < 8 ? $"only {b.Length} bytes, too short for the signature" : "the 8-byte PNG signature is missing");

        Header? h = null;
        var idat = new MemoryStream();
        bool sawIdat = false, sawIend = false;
        int pos = 8;
        while (pos < b.Length)
        {
            if (b.Length - pos < 12)
                Png.Fail(src, $"truncated: {b.Length - pos} stray bytes at offset {pos}, a chunk needs at least 12");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(pos));
            var typeBytes = b.AsSpan(pos + 4, 4);
            foreach (byte c in typeBytes)
                if (!char.IsAsciiLetter((char)c))
                    Png.Fail(src, $"bad chunk type bytes {Convert.ToHexString(typeBytes)} at offset {pos}");
            string type = System.Text.Encoding.ASCII.GetString(typeBytes);
            if (length > int.MaxValue || length > b.Length - pos - 12)
                Png.Fail(src, $"truncated: chunk {type} at offset {pos} claims {length} bytes, only {Math.Max(0, b.Length - pos - 12)} remain");
            var data = b.AsSpan(pos + 8, (int)length);
            uint storedCrc = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(pos + 8 + (int)length));
            uint crc = PngCrc.Compute(b.AsSpan(pos + 4, 4 + (int)length));
            if (crc != storedCrc)
                Png.Fail(src, $"CRC mismatch in chunk {type} at offset {pos} (stored {storedCrc:X8}, computed {crc:X8})");

            if (h is null && type != "IHDR")
                Png.Fail(src, $"first chunk is {type}, expected IHDR");
            switch (type)
            {
                case "IHDR":
                    if (h is not null) Png.Fail(src, "more than one IHDR chunk");
                    h = ParseHeader(data, src);
                    break;
                case "PLTE":
                    if (sawIdat) Png.Fail(src, "PLTE after IDAT");
                    if (h!.Palette is not null) Png.Fail(src, "more than one PLTE chunk");
                    if (h.ColorType is 0 or 4) Png.Fail(src, $"PLTE in a {(h.ColorType == 0 ? "gray" : "gray+alpha")} image");
                    if (length % 3 != 0 || length == 0 || length / 3 > 256)
                        Png.Fail(src, $"PLTE has {length} bytes; it must hold 1 to 256 RGB triples");
                    if (h.ColorType == 3)
                    {
                        if (length / 3 > 1 << h.BitDepth)
                            Png.Fail(src, $"PLTE has {length / 3} entries, more than {1 << h.BitDepth} for bit depth {h.BitDepth}");
                        h.Palette = data.ToArray();
                    }
                    break;                                          // a suggested palette in an RGB file is ignored
                case "tRNS":
                    if (sawIdat) Png.Fail(src, "tRNS after IDAT");
                    ParseTransparency(h!, data, src);
                    break;
                case "IDAT":
                    if (h!.ColorType == 3 && h.Palette is null) Png.Fail(src, "palette image has no PLTE before IDAT");
                    sawIdat = true;
                    idat.Write(data);
                    break;
                case "IEND":
                    sawIend = true;
                    break;
                default:
                    if (char.IsAsciiLetterUpper(type[0]))
                        Png.Fail(src, $"unknown critical chunk {type}");
                    break;                                          // ancillary chunks (gAMA, tEXt, pHYs …) are skipped
            }
            pos += 12 + (int)length;
            if (sawIend) break;
        }
        if (h is null) Png.Fail(src, "no IHDR chunk");
        if (!sawIdat) Png.Fail(src, "no IDAT chunk (no image data)");
        if (!sawIend) Png.Fail(src, "truncated: no IEND chunk");
        return (h, idat.ToArray());
    }

    static Header ParseHeader(ReadOnlySpan<byte> d, string src)
    {
        if (d.Length != 13) Png.Fail(src, $"IHDR has {d.Length} bytes, expected 13");
        uint w = BinaryPrimitives.ReadUInt32BigEndian(d), hgt = BinaryPrimitives.ReadUInt32BigEndian(d[4..]);
        if (w == 0 || hgt == 0) Png.Fail(src, $"image size {w}×{hgt} has a zero side");
        if (w > Png.MaxDimension || hgt > Png.MaxDimension)
            Png.Fail(src, $"image size {w}×{hgt} exceeds the {Png.MaxDimension}×{Png.MaxDimension} limit");
        int depth = d[8], type = d[9];
        bool ok = type switch
        {
            0 => depth is 1 or 2 or 4 or 8 or 16,
            3 => depth is 1 or 2 or 4 or 8,
            2 or 4 or 6 => depth is 8 or 16,
            _ => false,
        };
        if (!ok) Png.Fail(src, $"colour type {type} with bit depth {depth} is not a valid combination");
        if (d[10] != 0) Png.Fail(src, $"unknown compression method {d[10]}");
        if (d[11] != 0) Png.Fail(src, $"unknown filter method {d[11]}");
        if (d[12] > 1) Png.Fail(src, $"unknown interlace method {d[12]}");
        return new Header { Width = (int)w, Height = (int)hgt, BitDepth = depth, ColorType = type, Interlaced = d[12] == 1 };
    }

    static void ParseTransparency(Header h, ReadOnlySpan<byte> d, string src)
    {
        switch (h.ColorType)
        {
            case 3:
                if (h.Palette is null) Png.Fail(src, "tRNS before PLTE");
                int entries = h.Palette.Length / 3;
                if (d.Length > entries) Png.Fail(src, $"tRNS has {d.Length} alphas for a {entries}-entry palette");
                h.PaletteAlpha = new byte[entries];
                h.PaletteAlpha.AsSpan().Fill(255);                  // entries past the end of tRNS are opaque
                d.CopyTo(h.PaletteAlpha);
                break;
            case 0 or 2:
                int n = h.ColorType == 0 ? 1 : 3;
                if (d.Length != 2 * n) Png.Fail(src, $"tRNS has {d.Length} bytes, expected {2 * n} for colour type {h.ColorType}");
                h.ColorKey = new int[n];
                for (int k = 0; k < n; k++) h.ColorKey[k] = BinaryPrimitives.ReadUInt16BigEndian(d[(2 * k)..]);
                break;
            // colour types 4 and 6 already carry alpha; a tRNS there is ignored, as libpng does
        }
    }

    /// <summary>Reverses one row's filter in place (§7.3, §9). <paramref name="prev"/> is the previous unfiltered row, zeros for the first.</summary>
    internal static void Unfilter(byte filter, Span<byte> row, ReadOnlySpan<byte> prev, int bpp, string src, int y)
    {
        int n = row.Length;
        switch (filter)
        {
            case 0:
                break;
            case 1:                                                 // Sub: + left
                for (int i = bpp; i < n; i++) row[i] += row[i - bpp];
                break;
            case 2:                                                 // Up: + above
                for (int i = 0; i < n; i++) row[i] += prev[i];
                break;
            case 3:                                                 // Average: + floor((left + above) / 2)
                for (int i = 0; i < bpp; i++) row[i] += (byte)(prev[i] >> 1);
                for (int i = bpp; i < n; i++) row[i] += (byte)((row[i - bpp] + prev[i]) >> 1);
                break;
            case 4:                                                 // Paeth: + predictor(left, above, upper-left)
                for (int i = 0; i < bpp; i++) row[i] += prev[i];    // left and upper-left are 0: Paeth picks above
                for (int i = bpp; i < n; i++) row[i] += Paeth(row[i - bpp], prev[i], prev[i - bpp]);
                break;
            default:
                Png.Fail(src, $"row {y} has unknown filter type {filter}");
                break;
        }
    }

    /// <summary>Paeth predictor (§9.4): of left, above, upper-left, the one closest to left + above − upper-left; ties in that order.</summary>
    internal static byte Paeth(byte a, byte b, byte c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>Converts one unfiltered row of pass pixels to 8-bit output samples at their image positions.</summary>
    static void ExpandRow(Header h, ReadOnlySpan<byte> row, int pw, byte[] dst, int channels,
                          (int X, int Y, int Dx, int Dy) pass, int j, string src)
    {
        int y = pass.Y + j * pass.Dy;
        int o = (y * h.Width + pass.X) * channels, step = pass.Dx * channels;
        int depth = h.BitDepth;
        if (depth < 8)
        {
            // Packed gray or palette indices, leftmost pixel in the high bits (§7.2).
            int mask = (1 << depth) - 1, scale = 255 / mask;
            for (int i = 0; i < pw; i++, o += step)
            {
                int bit = i * depth;
                int v = (row[bit >> 3] >> (8 - depth - (bit & 7))) & mask;
                if (h.ColorType == 3) WritePaletteEntry(h, v, dst, o, channels, src);
                else
                {
                    dst[o] = (byte)(v * scale);
                    if (channels == 2) dst[o + 1] = v == h.ColorKey![0] ? (byte)0 : (byte)255;
                }
            }
            return;
        }
        if (h.ColorType == 3)
        {
            for (int i = 0; i < pw; i++, o += step) WritePaletteEntry(h, row[i], dst, o, channels, src);
            return;
        }
        int spp = h.SamplesPerPixel, bytesPerSample = depth / 8;
        var key = h.ColorKey;
        for (int i = 0; i < pw; i++, o += step)
        {
            int s = i * spp * bytesPerSample;
            for (int k = 0; k < spp; k++)
                dst[o + k] = row[s + k * bytesPerSample];           // 16-bit: the high byte comes first
            if (key is not null)
            {
                bool match = true;
                for (int k = 0; k < spp && match; k++)
                {
                    int v = bytesPerSample == 1 ? row[s + k] : row[s + 2 * k] << 8 | row[s + 2 * k + 1];
                    match = v == key[k];
                }
                dst[o + spp] = match ? (byte)0 : (byte)255;
            }
        }
    }

    static void WritePaletteEntry(Header h, int index, byte[] dst, int o, int channels, string src)
    {
        var pal = h.Palette!;
        if (index * 3 >= pal.Length)
            Png.Fail(src, $"palette index {index} is out of range (PLTE has {pal.Length / 3} entries)");
        dst[o] = pal[3 * index];
        dst[o + 1] = pal[3 * index + 1];
        dst[o + 2] = pal[3 * index + 2];
        if (channels == 4) dst[o + 3] = h.PaletteAlpha![index];
    }
}

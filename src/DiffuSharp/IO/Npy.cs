// NumPy .npy reader and writer for float arrays (format spec: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
// Layout: "\x93NUMPY", major, minor, header length (u16 for v1, u32 for v2/v3), then a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and '\n' so the data starts on a
// 64-byte boundary, then the raw data. We read v1/v2/v3 with '<f4' or '<f8' (converted to float32) in C order;
// the writer reproduces numpy's own bytes (including its 21-digit growth padding). Deviation: bytes after the data
// are rejected (numpy ignores them) — a file we read must be exactly one array.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace DiffuSharp.IO;

/// <summary>NumPy .npy files of float arrays: reads format versions 1–3 with '&lt;f4' or '&lt;f8' data in C order, and
/// writes the bytes numpy itself writes. A file must hold exactly one array (trailing bytes are refused).</summary>
public static class Npy
{
    const int MaxHeaderBytes = 1 << 20;                    // numpy itself refuses headers over 10,000 bytes by default
    static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a C-order '&lt;f4' or '&lt;f8' array (the latter rounded to float32). Shape: () for a scalar.</summary>
    public static (int[] Shape, float[] Data) ReadFloat32(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new FileNotFoundException($".npy file not found: {path}", path);
            if (info.Length > Array.MaxLength)
                throw new InvalidDataException($"{path}: file is {info.Length} bytes; this in-memory reader handles at most {Array.MaxLength}");
            bytes = File.ReadAllBytes(path);
        }
        catch (DirectoryNotFoundException e) { throw new FileNotFoundException($".npy file not found: {path}", path, e); }
        return Parse(bytes, path);
    }

    /// <summary>Writes a C-order '&lt;f4' array atomically. shape: any rank (empty for a scalar), product = data.Length.</summary>
    public static void WriteFloat32(string path, int[] shape, ReadOnlySpan<float> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(shape);
        long count = shape.Contains(0) ? 0 : 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Shape ({string.Join(", ", shape)}) has a negative dimension.", nameof(shape));
            if (count <= data.Length) count *= d;          // count ≤ data.Length before each step, so no overflow
        }
        if (count != data.Length)
            throw new ArgumentException($"Shape ({string.Join(", ", shape)}) does not match data of {data.Length} elements.", nameof(shape));

        byte[] prefix = BuildHeader(shape);
        // AtomicFile takes a delegate, which cannot capture a span: copy to little-endian bytes first.
        var payload = new byte[data.Length * 4L];
        if (BitConverter.IsLittleEndian) MemoryMarshal.AsBytes(data).CopyTo(payload);
        else for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(payload.AsSpan(4 * i), data[i]);
        AtomicFile.Write(path, s => { s.Write(prefix); s.Write(payload); });
    }

    /// <summary>Magic, version and header exactly as numpy.lib.format.write_array writes them for a '&lt;f4' C-order array.</summary>
    internal static byte[] BuildHeader(int[] shape)
    {
        string tuple = shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}";
        // numpy leaves room for the first axis to grow to 21 digits so the header can be rewritten in place.
        if (shape.Length > 0) dict += new string(' ', Math.Max(0, 21 - shape[0].ToString().Length));
        int lengthBytes = dict.Length + 1 + 10 > ushort.MaxValue ? 4 : 2;   // v1.0 unless the header needs u32
        int total = (6 + 2 + lengthBytes + dict.Length + 1 + 63) / 64 * 64;
        string header = dict.PadRight(total - 6 - 2 - lengthBytes - 1) + "\n";

        var bytes = new byte[total];
        Magic.CopyTo(bytes);
        bytes[6] = (byte)(lengthBytes == 2 ? 1 : 2);
        bytes[7] = 0;
        if (lengthBytes == 2) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)header.Length);
        Encoding.ASCII.GetBytes(header, bytes.AsSpan(8 + lengthBytes));
        return bytes;
    }

    /// <summary>Parses a whole .npy file held in memory; every problem is an InvalidDataException naming the source.</summary>
    internal static (int[] Shape, float[] Data) Parse(byte[] bytes, string source)
    {
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw Fail(source, "not a .npy file (missing the \\x93NUMPY magic)");
        byte major = bytes[6], minor = bytes[7];
        if (major is < 1 or > 3 || minor != 0)
            throw Fail(source, $"unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)");
        int lengthBytes = major == 1 ? 2 : 4;
        if (bytes.Length < 8 + lengthBytes) throw Fail(source, "file ends inside the header length field");
        ulong headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)) : BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        long available = bytes.Length - 8 - lengthBytes;
        if (headerLength > MaxHeaderBytes)
            throw Fail(source, $"header length field claims {headerLength} bytes, more than the {MaxHeaderBytes}-byte limit");
        if ((long)headerLength > available)
            throw Fail(source, $"header length field claims {headerLength} bytes but only {available} bytes follow (truncated file)");

        int dataStart = 8 + lengthBytes + (int)headerLength;
        // v1/v2 headers are latin-1; v3 allows UTF-8 (only needed for structured dtypes, which we reject anyway).
        var encoding = major == 3 ? new UTF8Encoding(false, throwOnInvalidBytes: true) : Encoding.Latin1;
        string text;
        try { text = encoding.GetString(bytes, 8 + lengthBytes, (int)headerLength); }
        catch (DecoderFallbackException) { throw Fail(source, "header is not valid UTF-8"); }

        var dict = new HeaderParser(text, source).ParseDict();
        if (!dict.TryGetValue("descr", out var descrValue)) throw Fail(source, "header has no 'descr' key");
        if (!dict.TryGetValue("fortran_order", out var fortranValue)) throw Fail(source, "header has no 'fortran_order' key");
        if (!dict.TryGetValue("shape", out var shapeValue)) throw Fail(source, "header has no 'shape' key");
        if (descrValue is not string descr) throw Fail(source, $"'descr' must be a dtype string, got {Describe(descrValue)}");
        if (fortranValue is not bool fortran) throw Fail(source, $"'fortran_order' must be True or False, got {Describe(fortranValue)}");
        if (shapeValue is not long[] dims) throw Fail(source, $"'shape' must be a tuple of integers, got {Describe(shapeValue)}");

        int itemSize = descr switch
        {
            "<f4" => 4,
            "<f8" => 8,
            _ => throw Fail(source, $"unsupported dtype '{descr}' (supported: '<f4', '<f8')"),
        };
        if (fortran) throw Fail(source, "array is stored in Fortran (column-major) order; only C order is supported — save np.ascontiguousarray(a)");

        var shape = new int[dims.Length];
        long count = 1;                                    // saturates at long.MaxValue: beyond the file size is a mismatch anyway
        for (int i = 0; i < dims.Length; i++)
        {
            long d = dims[i];
            if (d < 0) throw Fail(source, $"shape {FormatShape(dims)} has a negative dimension");
            if (d > int.MaxValue) throw Fail(source, $"shape {FormatShape(dims)}: dimension {d} is too large");
            shape[i] = (int)d;
            count = d == 0 || count == 0 ? 0 : count > bytes.Length / d ? long.MaxValue : count * d;
        }
        long dataBytes = bytes.Length - dataStart;
        if (count == long.MaxValue || count * itemSize != dataBytes)
            throw Fail(source, $"shape {FormatShape(dims)} of '{descr}' needs {(count == long.MaxValue ? "more" : (count * itemSize).ToString())} data bytes, file has {dataBytes}");

        var data = new float[count];
        var src = bytes.AsSpan(dataStart);
        if (itemSize == 4 && BitConverter.IsLittleEndian) src.CopyTo(MemoryMarshal.AsBytes(data.AsSpan()));
        else if (itemSize == 4) for (int i = 0; i < data.Length; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
        else for (int i = 0; i < data.Length; i++) data[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
        return (shape, data);
    }

    static string FormatShape(long[] dims) => dims.Length == 1 ? $"({dims[0]},)" : $"({string.Join(", ", dims)})";

    static string Describe(object value) => value switch
    {
        string s => $"'{s}'",
        bool b => b ? "True" : "False",
        long[] t => FormatShape(t),
        _ => value.ToString() ?? "?",
    };

    static InvalidDataException Fail(string source, string problem) => new($"{source}: {problem}");

    /// <summary>
    /// The subset of Python literal syntax numpy writes: a dict of quoted-string keys whose values are quoted strings,
    /// True/False, or tuples of integers (a trailing 'L' from Python 2 allowed). Nothing is evaluated.
    /// </summary>
    sealed class HeaderParser(string text, string source)
    {
        int _pos;

        public Dictionary<string, object> ParseDict()
        {
            var dict = new Dictionary<string, object>(StringComparer.Ordinal);
            SkipSpace();
            Expect('{');
            while (true)
            {
                SkipSpace();
                if (Peek() == '}') { _pos++; break; }
                string key = ParseString();
                SkipSpace();
                Expect(':');
                SkipSpace();
                object value = ParseValue();
                if (!dict.TryAdd(key, value)) throw Error($"key '{key}' appears more than once");
                SkipSpace();
                if (Peek() == ',') { _pos++; continue; }
                Expect('}');
                break;
            }
            SkipSpace();
            if (_pos != text.Length) throw Error("unexpected text after the closing '}'");
            return dict;
        }

        object ParseValue()
        {
            char c = Peek();
            if (c is '\'' or '"') return ParseString();
            if (c == '(') return ParseTuple();
            if (Accept("True")) return true;
            if (Accept("False")) return false;
            throw Error("expected a string, True, False or a tuple");
        }

        long[] ParseTuple()
        {
            Expect('(');
            var items = new List<long>();
            while (true)
            {
                SkipSpace();
                if (Peek() == ')') { _pos++; return items.ToArray(); }
                items.Add(ParseInteger());
                SkipSpace();
                if (Peek() == ',') { _pos++; continue; }
                Expect(')');
                return items.ToArray();
            }
        }

        long ParseInteger()
        {
            bool negative = Peek() == '-';
            if (negative) _pos++;
            int start = _pos;
            long value = 0;
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
            {
                // Saturate rather than overflow: anything this large is rejected as a dimension anyway.
                value = value > (long.MaxValue - 9) / 10 ? long.MaxValue : value * 10 + (text[_pos] - '0');
                _pos++;
            }
            if (_pos == start) throw Error("expected an integer");
            if (Peek() is 'L' or 'l') _pos++;
            return negative ? -value : value;
        }

        string ParseString()
        {
            char quote = Peek();
            if (quote is not ('\'' or '"')) throw Error("expected a quoted string");
            int end = text.IndexOf(quote, _pos + 1);
            if (end < 0) throw Error("unterminated string");
            string s = text[(_pos + 1)..end];
            if (s.Contains('\\')) throw Error("escape sequences are not supported in header strings");
            _pos = end + 1;
            return s;
        }

        bool Accept(string word)
        {
            if (string.CompareOrdinal(text, _pos, word, 0, word.Length) != 0) return false;
            _pos += word.Length;
            return true;
        }

        void Expect(char c)
        {
            if (Peek() != c) throw Error($"expected '{c}'");
            _pos++;
        }

        char Peek() => _pos < text.Length ? text[_pos] : '\0';

        void SkipSpace()
        {
            while (_pos < text.Length && text[_pos] is ' ' or '\t' or '\n' or '\r') _pos++;
        }

        InvalidDataException Error(string problem)
        {
            string near = text.Length - _pos > 20 ? text.Substring(_pos, 20) + "…" : text[_pos..];
            return Fail(source, $"malformed header dict at character {_pos} ({problem}, found \"{near.TrimEnd()}\")");
        }
    }
}

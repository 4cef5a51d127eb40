// Reader for the safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the raw little-endian row-major data, offsets relative to the first byte after the header.
// Validation follows the reference `Metadata::validate`: header ≤ 100 MB and inside the file, JSON object starting
// with '{', known dtypes, byte length = product(shape)·sizeof(dtype), tensors contiguous from offset 0 with no
// overlap or gap, and no bytes after the last tensor. A file up to InMemoryLimit is held in memory; a larger one
// (a Stable Diffusion UNet or single-file checkpoint: 2-7 GB) keeps only its header and reads each tensor from the
// file when asked (OpenLazy), so neither the 2 GB array limit nor a second copy of the weights applies. Every problem
// with the bytes is an InvalidDataException naming the file, the tensor and what is wrong.
using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Text.Json;
using System.Text.Unicode;

namespace DiffuSharp.IO;

/// <summary>One tensor's header entry. Begin/End are byte offsets relative to the start of the data section.</summary>
public sealed record TensorInfo(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>A validated, read-only, in-memory view of one safetensors file.</summary>
public sealed class SafeTensorsFile
{
    /// <summary>Header size limit, as in the reference implementation (a larger claim is rejected before allocating).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    readonly byte[]? _bytes;            // the whole file, or null when tensors are read from _path on demand
    readonly string? _path;
    readonly long _dataStart;
    readonly Dictionary<string, TensorInfo> _infos;

    /// <summary>The path or name given when the file was opened; used in every error message.</summary>
    public string SourceName { get; }
    /// <summary>Tensor names in file (data offset) order.</summary>
    public IReadOnlyList<string> Names { get; }
    /// <summary>The "__metadata__" string map; empty if the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Files larger than this are opened lazily by <see cref="Open(string)"/>.</summary>
    public const long InMemoryLimit = 512L << 20;

    SafeTensorsFile(byte[] bytes, long fileLength, string sourceName, string? lazyPath)
    {
        _bytes = lazyPath is null ? bytes : null;
        _path = lazyPath;
        SourceName = sourceName;
        var (dataStart, infos, metadata) = Validate(bytes, fileLength, sourceName);
        _dataStart = dataStart;
        _infos = infos.ToDictionary(i => i.Name, StringComparer.Ordinal);
        Names = Array.AsReadOnly(infos.Select(i => i.Name).ToArray());
        Metadata = new ReadOnlyDictionary<string, string>(metadata);
    }

    /// <summary>Reads and validates a file (lazily when it is larger than <see cref="InMemoryLimit"/>). Throws
    /// FileNotFoundException or InvalidDataException naming the file.</summary>
    public static SafeTensorsFile Open(string path) => Open(path, lazy: null);

    /// <summary>Validates the header and reads each tensor from the file only when it is asked for.</summary>
    public static SafeTensorsFile OpenLazy(string path) => Open(path, lazy: true);

    static SafeTensorsFile Open(string path, bool? lazy)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        FileStream fs;
        try { fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new FileNotFoundException($"safetensors file not found: {path}", path, e);
        }
        using (fs)
        {
            long length = fs.Length;
            // Check the claimed header length against the real file before reading (or allocating) anything big.
            if (length >= 8)
            {
                Span<byte> prefix = stackalloc byte[8];
                fs.ReadExactly(prefix);
                ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
                CheckHeaderLength(n, length, path);
                if (lazy ?? length > InMemoryLimit)
                {
                    var head = new byte[8 + (long)n];
                    prefix.CopyTo(head);
                    try { fs.ReadExactly(head, 8, (int)n); }
                    catch (EndOfStreamException) { throw Fail(path, null, "file became shorter while it was being read"); }
                    return new SafeTensorsFile(head, length, path, path);
                }
                fs.Position = 0;
            }
            if (length > Array.MaxLength)
                throw Fail(path, null, $"file is {length} bytes; this in-memory reader handles at most {Array.MaxLength}");
            var bytes = new byte[length];
            try { fs.ReadExactly(bytes); }
            catch (EndOfStreamException) { throw Fail(path, null, "file became shorter while it was being read"); }
            return new SafeTensorsFile(bytes, bytes.Length, path, null);
        }
    }

    /// <summary>Validates safetensors bytes already in memory. The array is not copied and must not be modified afterwards.</summary>
    public static SafeTensorsFile Parse(byte[] bytes, string sourceName = "<memory>")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        return new SafeTensorsFile(bytes, bytes.Length, sourceName, null);
    }

    /// <summary>True when the header lists a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _infos.ContainsKey(name);

    /// <summary>The header entry of a tensor (a copy: mutating its Shape does not affect the file).</summary>
    public TensorInfo Info(string name)
    {
        var info = Get(name);
        return info with { Shape = (long[])info.Shape.Clone() };
    }

    /// <summary>F32 as stored; F64, F16, BF16 and F8 converted to float32 (F64 rounds to nearest).</summary>
    public float[] ReadFloat32(string name)
    {
        var src = Slice(name, out var info, out int count);
        if (!SafeTensorsDType.IsFloat(info.DType))
            throw Fail(SourceName, name, $"dtype {info.DType} is not a float type; ReadFloat32 reads F32, F64, F16, BF16, F8_E4M3, F8_E5M2");
        var dst = new float[count];
        SafeTensorsDType.ToSingle(info.DType, src, dst);
        return dst;
    }

    /// <summary>F64 as stored; F32, F16, BF16 and F8 widened exactly.</summary>
    public double[] ReadFloat64(string name)
    {
        var src = Slice(name, out var info, out int count);
        if (!SafeTensorsDType.IsFloat(info.DType))
            throw Fail(SourceName, name, $"dtype {info.DType} is not a float type; ReadFloat64 reads F64, F32, F16, BF16, F8_E4M3, F8_E5M2");
        var dst = new double[count];
        SafeTensorsDType.ToDouble(info.DType, src, dst);
        return dst;
    }

    /// <summary>I64 as stored; I32, I16, I8, U64 (≤ long.MaxValue), U32, U16, U8 and BOOL (0/1) widened. Float dtypes are rejected.</summary>
    public long[] ReadInt64(string name)
    {
        var src = Slice(name, out var info, out int count);
        if (SafeTensorsDType.IsFloat(info.DType))
            throw Fail(SourceName, name, $"dtype {info.DType} is a float type; ReadInt64 reads integer and BOOL dtypes only");
        var dst = new long[count];
        SafeTensorsDType.ToInt64(info.DType, src, dst, problem => Fail(SourceName, name, problem));
        return dst;
    }

    /// <summary>A copy of the tensor's raw little-endian bytes.</summary>
    public byte[] ReadRaw(string name) => Slice(name, out _, out _).ToArray();

    TensorInfo Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _infos.TryGetValue(name, out var info)
            ? info
            : throw new KeyNotFoundException($"{SourceName}: no tensor named '{name}' ({_infos.Count} tensors in the file)");
    }

    ReadOnlySpan<byte> Slice(string name, out TensorInfo info, out int count)
    {
        info = Get(name);
        long bytes = info.End - info.Begin;
        if (bytes > Array.MaxLength) throw Fail(SourceName, name, $"tensor is {bytes} bytes; one tensor is read into at most {Array.MaxLength}");
        int length = (int)bytes;
        count = length / SafeTensorsDType.SizeOf(info.DType);
        // In memory, Validate() proved Begin ≤ End ≤ data length ≤ Array.MaxLength, so these casts are exact.
        if (_bytes is not null) return _bytes.AsSpan((int)(_dataStart + info.Begin), length);
        var buffer = new byte[length];
        using var handle = File.OpenHandle(_path!, FileMode.Open, FileAccess.Read, FileShare.Read);
        for (int at = 0; at < length;)
        {
            int read = RandomAccess.Read(handle, buffer.AsSpan(at), _dataStart + info.Begin + at);
            if (read == 0) throw Fail(SourceName, name, "file became shorter after it was opened");
            at += read;
        }
        return buffer;
    }

    static void CheckHeaderLength(ulong n, long fileLength, string source)
    {
        if (n > MaxHeaderBytes)
            throw Fail(source, null, $"header length field claims {n} bytes, more than the {MaxHeaderBytes}-byte limit (corrupt or not a safetensors file)");
        if ((long)n > fileLength - 8)
            throw Fail(source, null, $"header length field claims {n} bytes but only {fileLength - 8} bytes follow the 8-byte prefix (truncated or not a safetensors file)");
    }

    /// <summary>bytes: the file, or (lazy) its first 8 + header-length bytes; fileLength: the whole file's length.</summary>
    static (long DataStart, List<TensorInfo> Infos, Dictionary<string, string> Metadata) Validate(byte[] bytes, long fileLength, string source)
    {
        if (fileLength < 8)
            throw Fail(source, null, $"file is {fileLength} bytes, shorter than the 8-byte header length prefix");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        CheckHeaderLength(n, fileLength, source);
        var header = new ReadOnlyMemory<byte>(bytes, 8, (int)n);
        if (n == 0 || header.Span[0] != (byte)'{')
            throw Fail(source, null, "header does not start with '{' (not a safetensors file, or a corrupt header)");

        // JsonDocument checks UTF-8 only when a string is read, so check it up front (as the reference does).
        if (!Utf8.IsValid(header.Span)) throw Fail(source, null, "header is not valid UTF-8");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Fail(source, null, $"header is not valid JSON: {e.Message}"); }

        var infos = new List<TensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using (doc)
        {
            long dataLength = fileLength - 8 - (long)n;
            try
            {
                foreach (var prop in doc.RootElement.EnumerateObject())
                {
                    if (!seen.Add(prop.Name))
                        throw Fail(source, prop.Name, "name appears more than once in the header");
                    if (prop.Name == "__metadata__") ReadMetadata(prop.Value, metadata, source);
                    else infos.Add(ReadEntry(prop.Name, prop.Value, dataLength, source));
                }
            }
            catch (InvalidOperationException e)                // JsonDocument's only complaint left: a string it cannot decode
            {
                throw Fail(source, null, $"header has a string that is not valid Unicode (such as an escaped lone surrogate): {e.Message}");
            }
            CheckLayout(infos, dataLength, source);
        }
        return (8 + (long)n, infos, metadata);
    }

    static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string source)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Fail(source, null, $"\"__metadata__\" must be an object of strings, got {value.ValueKind}");
        foreach (var kv in value.EnumerateObject())
        {
            if (kv.Value.ValueKind != JsonValueKind.String)
                throw Fail(source, null, $"\"__metadata__\" value for key '{kv.Name}' must be a string, got {kv.Value.ValueKind}");
            if (!metadata.TryAdd(kv.Name, kv.Value.GetString()!))
                throw Fail(source, null, $"\"__metadata__\" key '{kv.Name}' appears more than once");
        }
    }

    static TensorInfo ReadEntry(string name, JsonElement entry, long dataLength, string source)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw Fail(source, name, $"header entry must be an object with dtype, shape and data_offsets, got {entry.ValueKind}");
        string? dtype = null;
        long[]? shape = null, offsets = null;
        foreach (var field in entry.EnumerateObject())
        {
            bool duplicate = field.Name switch
            {
                "dtype" => dtype != null,
                "shape" => shape != null,
                "data_offsets" => offsets != null,
                _ => false,                                   // unknown fields are ignored, as by the reference
            };
            if (duplicate) throw Fail(source, name, $"field \"{field.Name}\" appears more than once");
            switch (field.Name)
            {
                case "dtype":
                    dtype = field.Value.ValueKind == JsonValueKind.String
                        ? field.Value.GetString()!
                        : throw Fail(source, name, $"\"dtype\" must be a string, got {field.Value.ValueKind}");
                    break;
                case "shape":
                    shape = ReadIntArray(field.Value, "shape", name, source);
                    break;
                case "data_offsets":
                    offsets = ReadIntArray(field.Value, "data_offsets", name, source);
                    break;
            }
        }
        if (dtype == null) throw Fail(source, name, "entry has no \"dtype\"");
        if (shape == null) throw Fail(source, name, "entry has no \"shape\"");
        if (offsets == null) throw Fail(source, name, "entry has no \"data_offsets\"");

        int size = SafeTensorsDType.SizeOf(dtype);
        if (size == 0) throw Fail(source, name, $"unknown dtype '{dtype}' (supported: {SafeTensorsDType.Supported})");
        if (offsets.Length != 2)
            throw Fail(source, name, $"\"data_offsets\" must be [begin, end], got {offsets.Length} numbers");
        long begin = offsets[0], end = offsets[1];
        if (begin > end) throw Fail(source, name, $"data_offsets [{begin}, {end}]: begin is after end");
        if (end > dataLength)
            throw Fail(source, name, $"data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes)");

        // product(shape)·size with overflow detection; a zero dimension makes the tensor empty whatever the others are.
        long count = 1;
        bool overflow = false;
        if (!shape.Contains(0))
            foreach (long d in shape)
                if (count > long.MaxValue / d) { overflow = true; break; }
                else count *= d;
        else count = 0;
        if (overflow || count > long.MaxValue / size)
            throw Fail(source, name, $"shape [{string.Join(", ", shape)}] has too many elements (product·{size} bytes overflows Int64)");
        if (count * size != end - begin)
            throw Fail(source, name, $"shape [{string.Join(", ", shape)}] of {dtype} needs {count * size} bytes but data_offsets [{begin}, {end}] span {end - begin}");
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    static long[] ReadIntArray(JsonElement value, string field, string name, string source)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw Fail(source, name, $"\"{field}\" must be an array of non-negative integers, got {value.ValueKind}");
        var result = new long[value.GetArrayLength()];
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v))
                throw Fail(source, name, $"\"{field}\"[{i}] = {Preview(item)} is not an integer in the Int64 range");
            if (v < 0) throw Fail(source, name, $"\"{field}\"[{i}] = {v} is negative");
            result[i++] = v;
        }
        return result;
    }

    /// <summary>Tensors must tile [0, dataLength) exactly: sorted by begin, each starts where the previous ended.</summary>
    static void CheckLayout(List<TensorInfo> infos, long dataLength, string source)
    {
        infos.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expected = 0;
        string? previous = null;
        foreach (var t in infos)
        {
            if (t.Begin < expected)
                throw Fail(source, t.Name, $"data_offsets [{t.Begin}, {t.End}] overlap tensor '{previous}' (which ends at {expected})");
            if (t.Begin > expected)
                throw Fail(source, t.Name, previous == null
                    ? $"data_offsets [{t.Begin}, {t.End}] leave {t.Begin} unused bytes at the start of the data section"
                    : $"data_offsets [{t.Begin}, {t.End}] leave a gap of {t.Begin - expected} bytes after tensor '{previous}'");
            expected = t.End;
            previous = t.Name;
        }
        if (expected != dataLength)
            throw Fail(source, null, $"data section is {dataLength} bytes but the tensors cover only {expected} (trailing or missing data)");
    }

    static string Preview(JsonElement e)
    {
        string text = e.GetRawText();
        return text.Length <= 40 ? text : text[..40] + "…";
    }

    static InvalidDataException Fail(string source, string? tensor, string problem) =>
        new(tensor == null ? $"{source}: {problem}" : $"{source}: tensor '{tensor}': {problem}");
}

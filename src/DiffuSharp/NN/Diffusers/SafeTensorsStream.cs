// A safetensors file read one tensor at a time from disk (IO/SafeTensors.cs holds a whole file in one array, which
// stops at 2 GB: Stable Diffusion 1.5's float32 UNet is 3.4 GB). The header is validated as the reference does
// (known dtypes, byte length = product(shape)·sizeof(dtype), tensors covering the data section from 0 with no gap
// or overlap, nothing after the last one); each tensor is then read with one positioned read and converted to
// float32 (F16, BF16, F64 and F8 widened or rounded by IO/SafeTensorsDType). Errors name the file and the tensor.
using System.Buffers.Binary;
using System.Text.Json;
using DiffuSharp.IO;

namespace DiffuSharp.NN.Diffusers;

internal sealed class SafeTensorsStream : IDisposable
{
    readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;
    readonly long _dataStart;
    readonly Dictionary<string, TensorInfo> _infos = new(StringComparer.Ordinal);

    public string SourceName { get; }
    /// <summary>Tensor names in header order.</summary>
    public IReadOnlyList<string> Names { get; }

    SafeTensorsStream(string path)
    {
        SourceName = path;
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            long length = RandomAccess.GetLength(_handle);
            Span<byte> prefix = stackalloc byte[8];
            if (length < 8 || RandomAccess.Read(_handle, prefix, 0) != 8) throw Fail(null, "shorter than the 8-byte header length prefix");
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (n > SafeTensorsFile.MaxHeaderBytes || (long)n > length - 8) throw Fail(null, $"header length field claims {n} bytes (corrupt, truncated or not a safetensors file)");
            var header = new byte[n];
            if (RandomAccess.Read(_handle, header, 8) != (int)n) throw Fail(null, "header is truncated");
            _dataStart = 8 + (long)n;
            long dataLength = length - _dataStart;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(header); }
            catch (JsonException e) { throw Fail(null, $"header is not valid JSON: {e.Message}"); }
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Fail(null, "header is not a JSON object");
            var names = new List<string>();
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__") continue;
                _infos[p.Name] = Entry(p.Name, p.Value, dataLength);
                names.Add(p.Name);
            }
            long at = 0;
            foreach (var info in _infos.Values.OrderBy(i => i.Begin).ThenBy(i => i.End))
            {
                if (info.Begin != at) throw Fail(info.Name, $"data_offsets start at {info.Begin}, expected {at} (gap or overlap)");
                at = info.End;
            }
            if (at != dataLength) throw Fail(null, $"{dataLength - at} bytes after the last tensor");
            Names = names;
        }
        catch
        {
            _handle.Dispose();
            throw;
        }
    }

    public static SafeTensorsStream Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file not found: {path}", path);
        return new SafeTensorsStream(path);
    }

    TensorInfo Entry(string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out var of) || of.ValueKind != JsonValueKind.Array || of.GetArrayLength() != 2)
            throw Fail(name, "header entry needs dtype, shape and data_offsets [begin, end]");
        string dtype = dt.GetString()!;
        int size = SafeTensorsDType.SizeOf(dtype);
        if (size == 0) throw Fail(name, $"unknown dtype '{dtype}'");
        long Int(JsonElement v) => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long x) && x >= 0 ? x : throw Fail(name, $"{v.GetRawText()} is not a non-negative integer");
        var shape = sh.EnumerateArray().Select(Int).ToArray();
        long begin = Int(of[0]), end = Int(of[1]);
        long count = 1;
        foreach (long d in shape) count = checked(count * d);
        if (begin > end || end > dataLength) throw Fail(name, $"data_offsets [{begin}, {end}] lie outside the {dataLength}-byte data section");
        if (end - begin != count * size) throw Fail(name, $"shape [{string.Join(", ", shape)}] of {dtype} needs {count * size} bytes but data_offsets span {end - begin}");
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    public bool Contains(string name) => _infos.ContainsKey(name);

    public TensorInfo Info(string name) => _infos.TryGetValue(name, out var i) ? i : throw Fail(name, "no such tensor");

    /// <summary>The tensor's values as float32 into dst (its element count).</summary>
    public void ReadFloat32(string name, Span<float> dst)
    {
        var info = Info(name);
        if (!SafeTensorsDType.IsFloat(info.DType)) throw Fail(name, $"dtype {info.DType} is not a float type");
        long bytes = info.End - info.Begin;
        if (dst.Length * (long)SafeTensorsDType.SizeOf(info.DType) != bytes) throw Fail(name, "destination has the wrong length");
        const int Chunk = 1 << 26;                                           // 64 MB reads: no whole-tensor byte copy
        var buffer = new byte[(int)Math.Min(bytes, Chunk)];
        int size = SafeTensorsDType.SizeOf(info.DType), done = 0;
        for (long at = 0; at < bytes; at += buffer.Length)
        {
            int len = (int)Math.Min(buffer.Length, bytes - at);
            int read = 0;
            while (read < len)
            {
                int r = RandomAccess.Read(_handle, buffer.AsSpan(read, len - read), _dataStart + info.Begin + at + read);
                if (r <= 0) throw Fail(name, "file ended while reading the tensor");
                read += r;
            }
            SafeTensorsDType.ToSingle(info.DType, buffer.AsSpan(0, len), dst.Slice(done, len / size));
            done += len / size;
        }
    }

    Exception Fail(string? tensor, string problem)
        => new InvalidDataException(tensor is null ? $"{SourceName}: {problem}" : $"{SourceName}: tensor '{tensor}': {problem}");

    public void Dispose() => _handle.Dispose();
}

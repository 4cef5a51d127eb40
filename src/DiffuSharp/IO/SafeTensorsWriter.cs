// Writer for the safetensors format (https://github.com/huggingface/safetensors), the inverse of SafeTensorsFile.
// Like the reference writer: compact JSON header with "__metadata__" first, padded with spaces to a multiple of 8,
// tensors laid out contiguously with no gaps. Deviation: tensors are ordered by name (ordinal) only, not by
// dtype alignment then name, so the output is stable whatever order the caller passes. Files are written atomically.
using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace DiffuSharp.IO;

/// <summary>Writes safetensors files (the inverse of <see cref="SafeTensorsFile"/>): a compact JSON header with
/// "__metadata__" first, padded to a multiple of 8 bytes, and the tensors ordered by name, written
/// atomically.</summary>
public static class SafeTensorsWriter
{
    /// <summary>Writes F32 tensors. Shape product must equal Data.Length (a scalar has shape []).</summary>
    public static void Write(string path, IEnumerable<(string Name, int[] Shape, float[] Data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = tensors.Select(t =>
        {
            ArgumentNullException.ThrowIfNull(t.Shape);
            ArgumentNullException.ThrowIfNull(t.Data);
            return new Entry(t.Name, "F32", Array.ConvertAll(t.Shape, d => (long)d), t.Data.LongLength * 4, null, t.Data);
        }).ToList();
        WriteEntries(path, entries, metadata);
    }

    /// <summary>Writes tensors of any supported dtype from raw little-endian bytes (length = product(shape)·sizeof(dtype)).</summary>
    public static void WriteMixed(string path, IEnumerable<(string Name, string DType, long[] Shape, byte[] RawLittleEndian)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = tensors.Select(t =>
        {
            ArgumentNullException.ThrowIfNull(t.DType);
            ArgumentNullException.ThrowIfNull(t.Shape);
            ArgumentNullException.ThrowIfNull(t.RawLittleEndian);
            return new Entry(t.Name, t.DType, (long[])t.Shape.Clone(), t.RawLittleEndian.LongLength, t.RawLittleEndian, null);
        }).ToList();
        WriteEntries(path, entries, metadata);
    }

    /// <summary>One tensor to write: its bytes come from Raw, or from F32 converted to little-endian.</summary>
    sealed record Entry(string Name, string DType, long[] Shape, long ByteLength, byte[]? Raw, float[]? F32);

    static void WriteEntries(string path, List<Entry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        for (int i = 0; i < entries.Count; i++)
        {
            Check(entries[i]);
            if (i > 0 && entries[i].Name == entries[i - 1].Name)
                throw new ArgumentException($"Tensor name '{entries[i].Name}' appears more than once.", nameof(entries));
        }
        byte[] header = BuildHeader(entries, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var e in entries)
                if (e.Raw != null) stream.Write(e.Raw);
                else WriteSingles(stream, e.F32!);
        });
    }

    static void Check(Entry e)
    {
        ArgumentNullException.ThrowIfNull(e.Name);
        if (e.Name == "__metadata__")
            throw new ArgumentException("'__metadata__' is reserved and cannot be a tensor name.");
        int size = SafeTensorsDType.SizeOf(e.DType);
        if (size == 0)
            throw new ArgumentException($"Tensor '{e.Name}': unknown dtype '{e.DType}' (supported: {SafeTensorsDType.Supported}).");
        long count = 1;
        foreach (long d in e.Shape)
        {
            if (d < 0) throw new ArgumentException($"Tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] has a negative dimension.");
            count = d == 0 || count == 0 ? 0 : count <= long.MaxValue / d ? count * d : -1;
            if (count < 0) throw new ArgumentException($"Tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] is too large.");
        }
        if (count > long.MaxValue / size || count * size != e.ByteLength)
            throw new ArgumentException(
                $"Tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] needs {count} {e.DType} elements of {size} bytes, got {e.ByteLength} bytes.");
    }

    /// <summary>{"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...} + spaces to a multiple of 8.</summary>
    static byte[] BuildHeader(List<Entry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping writes non-ASCII names as UTF-8 rather than \uXXXX; the header is never embedded in HTML.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    json.WriteString(key, value ?? throw new ArgumentException($"Metadata value for '{key}' is null."));
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in entries)
            {
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", e.DType);
                json.WriteStartArray("shape");
                foreach (long d in e.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset += e.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    static void WriteSingles(Stream stream, float[] data)
    {
        if (BitConverter.IsLittleEndian)
        {
            stream.Write(MemoryMarshal.AsBytes(data.AsSpan()));
            return;
        }
        var chunk = new byte[1 << 16];
        for (int i = 0; i < data.Length;)
        {
            int n = Math.Min(data.Length - i, chunk.Length / 4);
            for (int j = 0; j < n; j++) BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(4 * j), data[i + j]);
            stream.Write(chunk, 0, 4 * n);
            i += n;
        }
    }
}

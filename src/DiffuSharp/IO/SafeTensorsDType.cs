// safetensors dtypes: element sizes and little-endian decoding into float, double and long arrays.
// Names and sizes follow the reference implementation (https://github.com/huggingface/safetensors, `Dtype`);
// the sub-byte F4/F6 types and F8_E8M0 are not supported. Decoding never assumes alignment: the reference
// format does not align tensor data, and the parity files place F32 data at offsets that are only 4-aligned.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DiffuSharp.IO;

internal static class SafeTensorsDType
{
    static readonly Dictionary<string, int> Sizes = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E4M3"] = 1, ["F8_E5M2"] = 1,
        ["U16"] = 2, ["I16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["U32"] = 4, ["I32"] = 4, ["F32"] = 4,
        ["U64"] = 8, ["I64"] = 8, ["F64"] = 8,
    };

    public static string Supported => string.Join(", ", Sizes.Keys);

    /// <summary>Bytes per element, or 0 for an unknown dtype (names are case-sensitive, as in the reference).</summary>
    public static int SizeOf(string dtype) => Sizes.TryGetValue(dtype, out int size) ? size : 0;

    public static bool IsFloat(string dtype) => dtype is "F16" or "BF16" or "F32" or "F64" or "F8_E4M3" or "F8_E5M2";

    /// <summary>dst[i] = float(src[i]) for a float dtype (IsFloat).</summary>
    public static void ToSingle(string dtype, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (dtype)
        {
            case "F32":
                if (BitConverter.IsLittleEndian) src.CopyTo(MemoryMarshal.AsBytes(dst));
                else for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
                return;
            case "F64":
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
                return;
            case "F16":
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(2 * i)..]);
                return;
            case "BF16":
                for (int i = 0; i < dst.Length; i++) dst[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                return;
            case "F8_E4M3":
                for (int i = 0; i < dst.Length; i++) dst[i] = F8E4M3ToSingle(src[i]);
                return;
            case "F8_E5M2":
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf((ushort)(src[i] << 8));
                return;
            default:
                throw new UnreachableException($"dtype {dtype} reached the wrong converter");
        }
    }

    /// <summary>dst[i] = double(src[i]) for a float dtype (IsFloat).</summary>
    public static void ToDouble(string dtype, ReadOnlySpan<byte> src, Span<double> dst)
    {
        if (dtype == "F64")
        {
            if (BitConverter.IsLittleEndian) src.CopyTo(MemoryMarshal.AsBytes(dst));
            else for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
            return;
        }
        // Every narrower float type is exactly representable in float32, so widening via float is lossless.
        var tmp = new float[dst.Length];
        ToSingle(dtype, src, tmp);
        for (int i = 0; i < dst.Length; i++) dst[i] = tmp[i];
    }

    /// <summary>dst[i] = long(src[i]) for integer and BOOL dtypes (not IsFloat). U64 above long.MaxValue throws fail(problem).</summary>
    public static void ToInt64(string dtype, ReadOnlySpan<byte> src, Span<long> dst, Func<string, Exception> fail)
    {
        switch (dtype)
        {
            case "I64":
                if (BitConverter.IsLittleEndian) src.CopyTo(MemoryMarshal.AsBytes(dst));
                else for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt64LittleEndian(src[(8 * i)..]);
                return;
            case "U64":
                for (int i = 0; i < dst.Length; i++)
                {
                    ulong v = BinaryPrimitives.ReadUInt64LittleEndian(src[(8 * i)..]);
                    if (v > long.MaxValue) throw fail($"element {i} = {v} does not fit in Int64");
                    dst[i] = (long)v;
                }
                return;
            case "I32": for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt32LittleEndian(src[(4 * i)..]); return;
            case "U32": for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadUInt32LittleEndian(src[(4 * i)..]); return;
            case "I16": for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt16LittleEndian(src[(2 * i)..]); return;
            case "U16": for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]); return;
            case "I8": for (int i = 0; i < dst.Length; i++) dst[i] = (sbyte)src[i]; return;
            case "U8": for (int i = 0; i < dst.Length; i++) dst[i] = src[i]; return;
            case "BOOL": for (int i = 0; i < dst.Length; i++) dst[i] = src[i] != 0 ? 1 : 0; return;
            default:
                throw new UnreachableException($"dtype {dtype} reached the wrong converter");
        }
    }

    /// <summary>bfloat16 is the top half of a float32: shift the bits back into place.</summary>
    static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>OCP FP8 E4M3 ("fn"): bias 7, no infinities, S.1111.111 is NaN, e = 0 is subnormal m/8 · 2^-6.</summary>
    static float F8E4M3ToSingle(byte b)
    {
        int sign = b >> 7, exp = (b >> 3) & 0xF, man = b & 0x7;
        if (exp == 0xF && man == 0x7) return float.NaN;
        float mag = exp == 0 ? man / 8f * MathF.ScaleB(1f, -6) : (1 + man / 8f) * MathF.ScaleB(1f, exp - 7);
        return sign != 0 ? -mag : mag;
    }
}

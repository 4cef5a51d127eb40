// SafeTensorsFile / SafeTensorsWriter: every class of malformed input is rejected with an InvalidDataException that
// names the file, the tensor and the problem (and huge length claims are rejected without allocating); writer round
// trips are bit-exact and convert between dtypes correctly; the shared parity files read with the expected values.
using System.Buffers.Binary;
using System.Text;
using DiffuSharp.IO;
using Xunit;

namespace DiffuSharp.Tests.IO;

public sealed class SafeTensorsTests : IDisposable
{
    const string Source = "bad.safetensors";
    readonly string _dir = Directory.CreateTempSubdirectory("diffusharp-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string TempPath(string name) => Path.Combine(_dir, name);

    /// <summary>8-byte length prefix (the real header length unless claimed is given), header (' → "), then zero data bytes.</summary>
    static byte[] Build(string header, int dataBytes = 0, ulong? claimed = null)
    {
        var h = Encoding.UTF8.GetBytes(header.Replace('\'', '"'));
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimed ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        return bytes;
    }

    static InvalidDataException Rejects(byte[] bytes, string fragment, string? tensor = null)
    {
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Parse(bytes, Source));
        Assert.StartsWith(Source + ": ", e.Message);
        Assert.Contains(fragment, e.Message);
        if (tensor != null) Assert.Contains($"tensor '{tensor}'", e.Message);
        return e;
    }

    // ---- length prefix ----

    [Fact]
    public void File_shorter_than_the_length_prefix_is_rejected() => Rejects(new byte[5], "shorter than the 8-byte");

    [Fact]
    public void Header_length_past_the_end_of_the_file_is_rejected() =>
        Rejects(Build("{}", claimed: 100), "claims 100 bytes but only 2 bytes follow");

    [Theory]
    [InlineData(1UL << 40)]                                 // a terabyte
    [InlineData(ulong.MaxValue)]
    [InlineData(100_000_001UL)]                             // just over the reference's 100 MB cap
    public void Absurd_header_length_is_rejected_without_allocating_it(ulong claimed)
    {
        var bytes = Build("{}", claimed: claimed);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Rejects(bytes, $"claims {claimed} bytes");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "rejecting the header allocated over 1 MB");

        string path = TempPath("absurd.safetensors");
        File.WriteAllBytes(path, bytes);
        before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "Open allocated over 1 MB");
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Header_over_the_cap_is_rejected_by_Open_before_reading_a_big_file()
    {
        // A sparse file big enough to hold the claimed header: the cap alone must stop it, before the file is read.
        string path = TempPath("big.safetensors");
        using (var fs = new FileStream(path, FileMode.CreateNew))
        {
            var prefix = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, SafeTensorsFile.MaxHeaderBytes + 1);
            fs.Write(prefix);
            fs.SetLength(SafeTensorsFile.MaxHeaderBytes + 64);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "Open allocated over 1 MB");
        Assert.Contains("limit", e.Message);
    }

    [Fact]
    public void Truncation_at_every_length_is_rejected_cleanly()
    {
        byte[] good = File.ReadAllBytes(WriteSample());
        for (int n = 0; n < good.Length; n++)
            Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Parse(good[..n], Source));
    }

    // ---- header JSON ----

    [Theory]
    [InlineData("", "does not start with '{'")]
    [InlineData("  {}", "does not start with '{'")]
    [InlineData("[1, 2]", "does not start with '{'")]
    [InlineData("{not json}", "not valid JSON")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}", "not valid JSON")]
    [InlineData("{}x", "not valid JSON")]
    [InlineData("{'__metadata__':5}", "\"__metadata__\" must be an object of strings")]
    [InlineData("{'__metadata__':{'k':1}}", "value for key 'k' must be a string")]
    [InlineData("{'__metadata__':{'k':'1','k':'2'}}", "key 'k' appears more than once")]
    [InlineData("{'__metadata__':{'k':'\\uD800'}}", "not valid Unicode")]
    [InlineData("{'x\\uDC00y':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", "not valid Unicode")]
    public void Malformed_header_is_rejected(string header, string fragment) => Rejects(Build(header, 4), fragment);

    [Fact]
    public void Header_with_invalid_utf8_is_rejected()
    {
        var bytes = Build("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 4);
        bytes[10] = 0xFF;                                    // inside the name "a"
        Rejects(bytes, "not valid UTF-8");
    }

    [Theory]
    [InlineData("{'a':5}", "must be an object with dtype, shape and data_offsets, got Number")]
    [InlineData("{'a':[1]}", "got Array")]
    [InlineData("{'a':{'shape':[1],'data_offsets':[0,4]}}", "no \"dtype\"")]
    [InlineData("{'a':{'dtype':'F32','data_offsets':[0,4]}}", "no \"shape\"")]
    [InlineData("{'a':{'dtype':'F32','shape':[1]}}", "no \"data_offsets\"")]
    [InlineData("{'a':{'dtype':5,'shape':[1],'data_offsets':[0,4]}}", "\"dtype\" must be a string, got Number")]
    [InlineData("{'a':{'dtype':null,'shape':[1],'data_offsets':[0,4]}}", "\"dtype\" must be a string, got Null")]
    [InlineData("{'a':{'dtype':'F32','shape':'1','data_offsets':[0,4]}}", "\"shape\" must be an array")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':{'b':0}}}", "\"data_offsets\" must be an array")]
    [InlineData("{'a':{'dtype':'F32','shape':[1,'1'],'data_offsets':[0,4]}}", "\"shape\"[1] = \"1\" is not an integer")]
    [InlineData("{'a':{'dtype':'F32','shape':[1.5],'data_offsets':[0,4]}}", "\"shape\"[0] = 1.5 is not an integer")]
    [InlineData("{'a':{'dtype':'F32','shape':[1e30],'data_offsets':[0,4]}}", "is not an integer")]
    [InlineData("{'a':{'dtype':'F32','shape':[[1]],'data_offsets':[0,4]}}", "is not an integer")]
    [InlineData("{'a':{'dtype':'F32','shape':[-1],'data_offsets':[0,4]}}", "\"shape\"[0] = -1 is negative")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,null]}}", "\"data_offsets\"[1] = null is not an integer")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[-4,4]}}", "is negative")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,18446744073709551615]}}", "is not an integer")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0]}}", "must be [begin, end], got 1 numbers")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4,8]}}", "got 3 numbers")]
    [InlineData("{'a':{'dtype':'F32','dtype':'F32','shape':[1],'data_offsets':[0,4]}}", "field \"dtype\" appears more than once")]
    [InlineData("{'a':{'dtype':'F128','shape':[1],'data_offsets':[0,4]}}", "unknown dtype 'F128'")]
    [InlineData("{'a':{'dtype':'f32','shape':[1],'data_offsets':[0,4]}}", "unknown dtype 'f32'")]
    [InlineData("{'a':{'dtype':'F32','shape':[4294967296,4294967296,4294967296],'data_offsets':[0,4]}}", "overflows Int64")]
    [InlineData("{'a':{'dtype':'F64','shape':[1152921504606846976],'data_offsets':[0,4]}}", "overflows Int64")]
    [InlineData("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,4]}}", "needs 8 bytes but data_offsets [0, 4] span 4")]
    [InlineData("{'a':{'dtype':'F32','shape':[],'data_offsets':[0,0]}}", "needs 4 bytes")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,8]}}", "run past the end of the data section (4 bytes)")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[4,0]}}", "begin is after end")]
    public void Malformed_entry_is_rejected_naming_the_tensor(string header, string fragment) =>
        Rejects(Build(header, 4), fragment, tensor: "a");

    [Theory]
    [InlineData("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}", 12,
        "b", "overlap tensor 'a'")]
    [InlineData("{'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]},'a':{'dtype':'F32','shape':[3],'data_offsets':[0,12]}}", 12,
        "b", "overlap tensor 'a'")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},'b':{'dtype':'F32','shape':[1],'data_offsets':[8,12]}}", 12,
        "b", "gap of 4 bytes after tensor 'a'")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}", 8, "a", "leave 4 unused bytes at the start")]
    [InlineData("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},'a':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}", 8,
        "a", "appears more than once")]
    public void Bad_layout_is_rejected(string header, int dataBytes, string tensor, string fragment) =>
        Rejects(Build(header, dataBytes), fragment, tensor);

    [Fact]
    public void Bytes_after_the_last_tensor_are_rejected() =>
        Rejects(Build("{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 8), "cover only 4");

    [Fact]
    public void Random_corruption_only_ever_raises_InvalidDataException()
    {
        byte[] good = File.ReadAllBytes(WriteSample());
        var rng = new Random(1234);
        int accepted = 0;
        for (int trial = 0; trial < 3000; trial++)
        {
            var bytes = (byte[])good.Clone();
            int flips = rng.Next(1, 4);
            for (int k = 0; k < flips; k++)
            {
                // Mostly hit the prefix and header, where structure lives; sometimes anywhere.
                int at = rng.Next(4) == 0 ? rng.Next(bytes.Length) : rng.Next(Math.Min(bytes.Length, 8 + 200));
                bytes[at] = rng.Next(3) switch { 0 => (byte)rng.Next(256), 1 => (byte)"{}[]\",:0123456789-.e "[rng.Next(21)], _ => (byte)(bytes[at] ^ (1 << rng.Next(8))) };
            }
            try
            {
                var file = SafeTensorsFile.Parse(bytes, Source);
                foreach (string name in file.Names)
                {
                    string dtype = file.Info(name).DType;
                    try { if (dtype.StartsWith('F') || dtype == "BF16") file.ReadFloat32(name); else file.ReadInt64(name); }
                    catch (InvalidDataException) { }
                }
                accepted++;
            }
            catch (InvalidDataException) { }
        }
        Assert.InRange(accepted, 1, 2999);                   // some flips land in data or padding and stay valid
    }

    // ---- lookups and dtype mismatches ----

    [Fact]
    public void Missing_file_throws_FileNotFoundException_naming_it()
    {
        foreach (string path in new[] { TempPath("nope.safetensors"), TempPath("no/such/dir.safetensors") })
        {
            var e = Assert.Throws<FileNotFoundException>(() => SafeTensorsFile.Open(path));
            Assert.Contains(path, e.Message);
            Assert.Equal(path, e.FileName);
        }
    }

    [Fact]
    public void Reading_a_missing_name_names_the_tensor_and_the_file()
    {
        string path = WriteSample();
        var file = SafeTensorsFile.Open(path);
        Assert.False(file.Contains("missing.weight"));
        foreach (var read in new Action[] { () => file.Info("missing.weight"), () => file.ReadFloat32("missing.weight"), () => file.ReadInt64("missing.weight") })
        {
            var e = Assert.Throws<KeyNotFoundException>(read);
            Assert.Contains("'missing.weight'", e.Message);
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void Reading_with_the_wrong_kind_of_dtype_is_rejected()
    {
        var file = SafeTensorsFile.Open(WriteSample());
        var e = Assert.Throws<InvalidDataException>(() => file.ReadInt64("w"));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("F32 is a float type", e.Message);
        e = Assert.Throws<InvalidDataException>(() => file.ReadFloat32("steps"));
        Assert.Contains("I64 is not a float type", e.Message);
        Assert.Throws<InvalidDataException>(() => file.ReadFloat64("steps"));
    }

    [Fact]
    public void U64_above_Int64_range_is_rejected_on_read()
    {
        string path = TempPath("u64.safetensors");
        SafeTensorsWriter.WriteMixed(path, [("u", "U64", [2], Raw<ulong>(5, ulong.MaxValue))]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).ReadInt64("u"));
        Assert.Contains("element 1 = 18446744073709551615 does not fit", e.Message);
    }

    // ---- writer and round trips ----

    [Fact]
    public void Float32_round_trip_is_bit_exact_with_sorted_contiguous_padded_layout()
    {
        float[] special = [0f, -0f, 1f, -1.5f, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue,
            float.PositiveInfinity, float.NegativeInfinity, BitConverter.Int32BitsToSingle(0x7FC00001), BitConverter.Int32BitsToSingle(unchecked((int)0xFFBADBAD))];
        var rng = new Random(7);
        var big = new float[3 * 5 * 7];
        for (int i = 0; i < big.Length; i++) big[i] = (float)(rng.NextDouble() * 2 - 1);
        string path = TempPath("f32.safetensors");
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\" <tag>" };
        SafeTensorsWriter.Write(path, [("z.last", [3, 5, 7], big), ("a.first", [12], special), ("m.scalar", [], [42f]), ("e.empty", [0, 4], [])], metadata);

        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        Assert.Equal((byte)'{', bytes[8]);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.StartsWith("{\"__metadata__\":", header);
        Assert.Matches("} *$", header);

        var file = SafeTensorsFile.Open(path);
        Assert.Equal(["a.first", "e.empty", "m.scalar", "z.last"], file.Names);    // sorted by name, also offset order
        long end = 0;
        foreach (string name in file.Names)
        {
            var info = file.Info(name);
            Assert.Equal(end, info.Begin);
            end = info.End;
        }
        Assert.Equal(bytes.Length - 8 - (long)n, end);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(special.Select(BitConverter.SingleToInt32Bits), file.ReadFloat32("a.first").Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(big, file.ReadFloat32("z.last"));
        Assert.Equal([42f], file.ReadFloat32("m.scalar"));
        Assert.Equal(new long[0], file.Info("m.scalar").Shape);
        Assert.Empty(file.ReadFloat32("e.empty"));
        Assert.Equal([0L, 4L], file.Info("e.empty").Shape);
        var last = file.Info("z.last");                     // after 48 + 0 + 4 bytes of the names sorted before it
        Assert.Equal(("F32", 52L, 52L + 420), (last.DType, last.Begin, last.End));
        Assert.Equal([3L, 5L, 7L], last.Shape);
        Assert.Equal(big.Select(x => (double)x), file.ReadFloat64("z.last"));
    }

    [Fact]
    public void Writing_is_independent_of_input_order()
    {
        string a = TempPath("a.safetensors"), b = TempPath("b.safetensors");
        SafeTensorsWriter.Write(a, [("x", [1], [1f]), ("y", [2], [2f, 3f])], new Dictionary<string, string> { ["k1"] = "1", ["k2"] = "2" });
        SafeTensorsWriter.Write(b, [("y", [2], [2f, 3f]), ("x", [1], [1f])], new Dictionary<string, string> { ["k2"] = "2", ["k1"] = "1" });
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
    }

    [Fact]
    public void Empty_file_and_unusual_names_round_trip()
    {
        string path = TempPath("empty.safetensors");
        SafeTensorsWriter.Write(path, []);
        var empty = SafeTensorsFile.Open(path);
        Assert.Empty(empty.Names);
        Assert.Empty(empty.Metadata);
        Assert.Equal(16, new FileInfo(path).Length);                  // prefix + "{}" padded to 8

        SafeTensorsWriter.Write(path, [("β.weight", [1], [1f]), ("quote\"back\\slash", [1], [2f]), ("", [1], [3f])]);
        var file = SafeTensorsFile.Open(path);
        Assert.Equal([1f], file.ReadFloat32("β.weight"));
        Assert.Equal([2f], file.ReadFloat32("quote\"back\\slash"));
        Assert.Equal([3f], file.ReadFloat32(""));
    }

    [Fact]
    public void Mixed_dtypes_round_trip_and_convert()
    {
        double[] f64 = [0.0001, -2.5, 1e300, Math.PI];
        long[] i64 = [0, -1, long.MinValue, long.MaxValue, 999];
        Half[] f16 = [(Half)1.5, (Half)(-0.000061035156), Half.MaxValue, Half.NegativeInfinity];
        ushort[] bf16 = [0x3F80, 0xC020, 0x7F80, 0x0001];          // 1, -2.5, +inf, smallest subnormal 2^-133
        int[] i32 = [int.MinValue, -7, 0, int.MaxValue];
        string path = TempPath("mixed.safetensors");
        SafeTensorsWriter.WriteMixed(path,
        [
            ("f64", "F64", [2, 2], Raw<double>(f64)),
            ("i64", "I64", [5], Raw<long>(i64)),
            ("f16", "F16", [4], Raw<Half>(f16)),
            ("bf16", "BF16", [4], Raw<ushort>(bf16)),
            ("i32", "I32", [4], Raw<int>(i32)),
            ("i16", "I16", [2], Raw<short>(-300, 300)),
            ("u16", "U16", [1], Raw<ushort>(65535)),
            ("u32", "U32", [1], Raw<uint>(uint.MaxValue)),
            ("i8", "I8", [2], [0xFF, 0x7F]),
            ("u8", "U8", [2], [0xFF, 0x00]),
            ("bool", "BOOL", [3], [1, 0, 1]),
            ("e4m3", "F8_E4M3", [5], [0x38, 0xB8, 0x7E, 0x01, 0x7F]),
            ("e5m2", "F8_E5M2", [3], [0x3C, 0x7B, 0x7C]),
        ]);
        var file = SafeTensorsFile.Open(path);

        Assert.Equal(f64, file.ReadFloat64("f64"));
        Assert.Equal(f64.Select(x => (float)x), file.ReadFloat32("f64"));
        Assert.Equal(i64, file.ReadInt64("i64"));
        Assert.Equal(f16.Select(h => (float)h), file.ReadFloat32("f16"));
        Assert.Equal(f16.Select(h => (double)h), file.ReadFloat64("f16"));
        Assert.Equal([1f, -2.5f, float.PositiveInfinity, MathF.ScaleB(1f, -133)], file.ReadFloat32("bf16"));
        Assert.Equal([1.0, -2.5, double.PositiveInfinity, Math.ScaleB(1.0, -133)], file.ReadFloat64("bf16"));
        Assert.Equal(i32.Select(x => (long)x), file.ReadInt64("i32"));
        Assert.Equal([-300L, 300L], file.ReadInt64("i16"));
        Assert.Equal([65535L], file.ReadInt64("u16"));
        Assert.Equal([(long)uint.MaxValue], file.ReadInt64("u32"));
        Assert.Equal([-1L, 127L], file.ReadInt64("i8"));
        Assert.Equal([255L, 0L], file.ReadInt64("u8"));
        Assert.Equal([1L, 0L, 1L], file.ReadInt64("bool"));
        Assert.Equal([1f, -1f, 448f, MathF.ScaleB(1f, -9), float.NaN], file.ReadFloat32("e4m3"));
        Assert.Equal([1f, 57344f, float.PositiveInfinity], file.ReadFloat32("e5m2"));
        Assert.Equal(Raw<int>(i32), file.ReadRaw("i32"));
        Assert.Equal("F16", file.Info("f16").DType);
    }

    [Fact]
    public void Writer_rejects_inconsistent_input_and_leaves_the_old_file()
    {
        string path = TempPath("keep.safetensors");
        SafeTensorsWriter.Write(path, [("x", [1], [1f])]);
        byte[] before = File.ReadAllBytes(path);

        Assert.Contains("needs 6 F32 elements", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("x", [2, 3], new float[5])])).Message);
        Assert.Contains("more than once", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("x", [1], [1f]), ("x", [1], [2f])])).Message);
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("__metadata__", [1], [1f])])).Message);
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("x", [-1], [])])).Message);
        Assert.Contains("unknown dtype 'F128'", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.WriteMixed(path, [("x", "F128", [1], new byte[16])])).Message);
        Assert.Contains("got 7 bytes", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.WriteMixed(path, [("x", "I64", [1], new byte[7])])).Message);

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    // ---- shared parity files ----

    [Theory]
    [InlineData("diffusion_ref.safetensors")]
    [InlineData("mnist_s_io.safetensors")]
    [InlineData("mnist_s_grads.safetensors")]
    [InlineData("mnist_s_weights.safetensors")]
    public void Parity_files_read_completely(string fileName)
    {
        var file = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, fileName));
        Assert.NotEmpty(file.Names);
        foreach (string name in file.Names)
        {
            var info = file.Info(name);
            long count = info.Shape.Aggregate(1L, (p, d) => p * d);
            switch (info.DType)
            {
                case "F32": Assert.All(file.ReadFloat32(name), x => Assert.True(float.IsFinite(x), name)); Assert.Equal(count, file.ReadFloat32(name).Length); break;
                case "F64": Assert.All(file.ReadFloat64(name), x => Assert.True(double.IsFinite(x), name)); Assert.Equal(count, file.ReadFloat64(name).Length); break;
                case "I64": Assert.Equal(count, file.ReadInt64(name).Length); break;
                default: Assert.Fail($"{name}: unexpected dtype {info.DType}"); break;
            }
        }
    }

    [Fact]
    public void Parity_values_are_the_documented_ones()
    {
        var io = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "mnist_s_io.safetensors"));
        Assert.Equal([0L, 10L, 500L, 999L], io.ReadInt64("t"));
        Assert.Equal([0f, 10f, 500f, 999f], io.ReadFloat32("t_f32"));
        Assert.Equal([4L, 1L, 28L, 28L], io.Info("x").Shape);
        Assert.Equal("I64", io.Info("t").DType);
        Assert.Equal("0", io.Metadata["seed"]);
        double sumSq = io.ReadFloat32("out").Sum(x => (double)x * x);
        Assert.Equal(sumSq, io.ReadFloat32("loss")[0], sumSq * 1e-5);    // loss = sum(out**2)

        var diffusion = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "diffusion_ref.safetensors"));
        double[] betas = diffusion.ReadFloat64("linear.betas");
        Assert.Equal(1000, betas.Length);
        Assert.Equal(BitConverter.DoubleToInt64Bits(0.0001), BitConverter.DoubleToInt64Bits(betas[0]));   // float64 linspace endpoints are exact
        Assert.Equal(BitConverter.DoubleToInt64Bits(0.02), BitConverter.DoubleToInt64Bits(betas[^1]));
        Assert.True(betas.Zip(betas.Skip(1)).All(p => p.First < p.Second));
        Assert.Equal([0L, 1L, 500L, 999L], diffusion.ReadInt64("t"));
        Assert.Equal("1000", diffusion.Metadata["T"]);
        Assert.Equal("x_t", diffusion.Names[0]);

        var weights = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "mnist_s_weights.safetensors"));
        Assert.Equal(244, weights.Names.Count);
        Assert.Equal(1_623_169, weights.Names.Sum(n => weights.ReadFloat32(n).Length));
    }

    [Fact]
    public void Parity_file_rewritten_with_WriteMixed_keeps_every_tensor()
    {
        var original = SafeTensorsFile.Open(Path.Combine(TestPaths.Parity, "diffusion_ref.safetensors"));
        string path = TempPath("rewritten.safetensors");
        SafeTensorsWriter.WriteMixed(path, original.Names.Select(n => (n, original.Info(n).DType, original.Info(n).Shape, original.ReadRaw(n))), original.Metadata);
        var copy = SafeTensorsFile.Open(path);
        Assert.Equal(original.Names.Order(StringComparer.Ordinal), copy.Names);
        Assert.Equal(original.Metadata, copy.Metadata);
        foreach (string name in original.Names)
        {
            Assert.Equal(original.Info(name).Shape, copy.Info(name).Shape);
            Assert.Equal(original.ReadRaw(name), copy.ReadRaw(name));
        }
    }

    // ---- helpers ----

    /// <summary>A small valid file with F32, I64 and F16 tensors and metadata, for corruption tests.</summary>
    string WriteSample()
    {
        string path = TempPath("sample.safetensors");
        SafeTensorsWriter.WriteMixed(path,
        [
            ("w", "F32", [2, 3], Raw<float>(1, 2, 3, 4, 5, 6)),
            ("steps", "I64", [3], Raw<long>(0, 10, 999)),
            ("h", "F16", [2], Raw<Half>((Half)0.5, (Half)(-1))),
        ], new Dictionary<string, string> { ["k"] = "v" });
        return path;
    }

    static byte[] Raw<T>(params T[] values) where T : unmanaged
    {
        Assert.True(BitConverter.IsLittleEndian);
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    }
}

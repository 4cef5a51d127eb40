// JPEG, BMP, GIF, WebP and TIFF through SixLabors.ImageSharp 2.1.13 (pure managed, Apache-2.0), behind ImageFile.
// The configuration knows only these five formats (PNG goes through the project's own codec, see ImageFile.cs), its
// allocator refuses any single buffer over the pixel limit's worth, and multi-frame GIF and TIFF files decode
// their first frame only. The size is read from the header (Identify) and checked against the pixel limit before
// anything is decoded. Every failure of a decoder on bad bytes becomes an InvalidDataException naming the file:
// ImageSharp's own exception types, and the few runtime types its decoders are known to throw on crafted input
// (an index out of range, an overflow), which the fuzz harness counts separately.
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;

namespace DiffuSharp.Imaging;

internal static class ImageSharpCodec
{
    /// <summary>The formats ImageSharp decodes here, by the name that messages use.</summary>
    static readonly (string Name, IImageFormat Format, IImageDecoder Decoder)[] Formats =
    [
        ("JPEG", JpegFormat.Instance, new JpegDecoder()),
        ("BMP", BmpFormat.Instance, new BmpDecoder()),
        ("GIF", GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First }),
        ("WebP", WebpFormat.Instance, new WebpDecoder()),
        ("TIFF", TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First }),
    ];

    /// <summary>The format's name if the bytes start like one of the five formats, else null.</summary>
    public static string? Detect(ReadOnlySpan<byte> bytes)
    {
        try
        {
            var format = Image.DetectFormat(Configure(1 << 20), bytes);
            return format is null ? null : Array.Find(Formats, f => f.Format == format).Name;
        }
        catch (Exception e) when (IsDecoderFault(e)) { return null; }
    }

    /// <summary>Decodes the first frame as an 8-bit image with 1-4 channels (see <see cref="ToImage8"/>).</summary>
    public static Image8 Decode(byte[] bytes, string source, string formatName, long maxPixels)
    {
        var config = Configure(maxPixels);
        var decoder = Array.Find(Formats, f => f.Name == formatName).Decoder;
        var info = Guard(source, formatName, () => Image.Identify(config, bytes, out _))
            ?? throw new InvalidDataException($"{source}: not a valid {formatName} image: its header cannot be read");
        ImageFile.CheckSize(source, formatName, info.Width, info.Height, maxPixels);
        using var image = Guard(source, formatName, () => Image.Load<Rgba32>(config, bytes, decoder));
        return ToImage8(image);
    }

    // Runs a decoder call; what it throws on bad bytes becomes one InvalidDataException naming the file (its own
    // InvalidDataException too: System.IO.Compression's, from a TIFF's deflate strips, does not name the file).
    static T Guard<T>(string source, string formatName, Func<T> decode)
    {
        try { return decode(); }
        catch (Exception e) when (IsDecoderFault(e))
        {
            string why = e is ImageFormatException or NotSupportedException or InvalidMemoryOperationException or InvalidDataException
                ? e.Message : $"the decoder failed ({e.GetType().Name})";
            throw new InvalidDataException($"{source}: not a valid {formatName} image: {why}");
        }
    }

    /// <summary>Encodes a JPEG (4:2:0, <paramref name="quality"/> 1..100); alpha is composited over white first.</summary>
    public static byte[] EncodeJpeg(Image8 image, int quality)
    {
        var rgb = image.WithChannels(image.Channels <= 2 ? 1 : 3);
        using Image img = rgb.Channels == 1
            ? Image.LoadPixelData<L8>(rgb.Pixels, rgb.Width, rgb.Height)
            : Image.LoadPixelData<Rgb24>(rgb.Pixels, rgb.Width, rgb.Height);
        var ms = new MemoryStream();
        img.Save(ms, new JpegEncoder { Quality = quality, ColorType = rgb.Channels == 1 ? JpegColorType.Luminance : JpegColorType.YCbCrRatio420 });
        return ms.ToArray();
    }

    /// <summary>
    /// The pixels with as many channels as they use: gray when R = G = B everywhere, alpha only when some pixel is
    /// not opaque (a JPEG saved as gray reads back gray; an RGBA GIF with no transparency reads back RGB).
    /// </summary>
    static Image8 ToImage8(Image<Rgba32> image)
    {
        int w = image.Width, h = image.Height;
        var rgba = new byte[(long)w * h * 4];
        image.CopyPixelDataTo(rgba);
        bool gray = true, alpha = false;
        for (int i = 0; i < rgba.Length; i += 4)
        {
            gray &= rgba[i] == rgba[i + 1] && rgba[i] == rgba[i + 2];
            alpha |= rgba[i + 3] != 255;
        }
        int channels = (gray ? 1 : 3) + (alpha ? 1 : 0);
        if (channels == 4) return new Image8(w, h, 4, rgba);
        var dst = new byte[(long)w * h * channels];
        for (int s = 0, d = 0; s < rgba.Length; s += 4, d += channels)
        {
            dst[d] = rgba[s];
            if (channels == 2) dst[d + 1] = rgba[s + 3];
            else if (channels == 3) { dst[d + 1] = rgba[s + 1]; dst[d + 2] = rgba[s + 2]; }
        }
        return new Image8(w, h, channels, dst);
    }

    // One configuration per call: the allocation limit depends on the pixel limit (a frame is 4 bytes a pixel; the
    // decoders' own buffers are smaller), with 64 MB of headroom for small limits.
    static Configuration Configure(long maxPixels)
    {
        var config = new Configuration(new JpegConfigurationModule(), new BmpConfigurationModule(), new GifConfigurationModule(),
            new WebpConfigurationModule(), new TiffConfigurationModule());
        long mb = Math.Clamp(maxPixels * 4 / (1 << 20) + 64, 64, int.MaxValue);
        config.MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions { AllocationLimitMegabytes = (int)mb });
        config.MaxDegreeOfParallelism = 1;
        return config;
    }

    // What a decoder throws on bad bytes. Out-of-memory and stack overflow are not here: they are not the file's fault.
    static bool IsDecoderFault(Exception e) => e is ImageFormatException or UnknownImageFormatException or NotSupportedException
        or InvalidMemoryOperationException or IndexOutOfRangeException or ArgumentException or InvalidOperationException
        or OverflowException or EndOfStreamException or NullReferenceException or DivideByZeroException or IOException or InvalidDataException;
}

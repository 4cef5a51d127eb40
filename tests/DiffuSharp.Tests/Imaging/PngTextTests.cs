// PNG text chunks (specification §11.3.3.3 tEXt, §11.3.3.5 iTXt): what Png.Encode writes is read back byte for byte
// by the tests' own chunk walker, the image still decodes (CRCs checked), and a bad keyword is refused.
using System.Text;
using DiffuSharp.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Imaging;

public class PngTextTests
{
    [Fact]
    public void Latin1_text_is_a_tEXt_chunk_before_IDAT_and_reads_back()
    {
        const string parameters = "a photo of a café\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 1, Size: 64x64, Model: tiny_sd";
        var image = PngRoundTripTests.RandomImage(5, 4, 3, seed: 3);
        var bytes = Png.Encode(image, text: [("parameters", parameters)]);
        var chunks = PngTestFiles.Chunks(bytes);
        Assert.Equal(["IHDR", "tEXt", "IDAT", "IEND"], chunks.Select(c => c.Type));
        var data = chunks[1].Data;
        int nul = Array.IndexOf(data, (byte)0);
        Assert.Equal("parameters", Encoding.Latin1.GetString(data, 0, nul));
        Assert.Equal(parameters, Encoding.Latin1.GetString(data, nul + 1, data.Length - nul - 1));
        Assert.Equal(image.Pixels, Png.Decode(bytes).Pixels);
    }

    [Fact]
    public void Text_outside_latin1_is_an_uncompressed_iTXt_chunk()
    {
        var bytes = Png.Encode(PngRoundTripTests.RandomImage(2, 2, 3, seed: 4), text: [("parameters", "猫 🐱")]);
        var chunk = PngTestFiles.Chunks(bytes).Single(c => c.Type == "iTXt").Data;
        // keyword NUL, compression flag 0, method 0, language "" NUL, translated keyword "" NUL, UTF-8 text
        Assert.Equal(Encoding.Latin1.GetBytes("parameters\0\0\0\0\0").Concat(Encoding.UTF8.GetBytes("猫 🐱")), chunk);
    }

    [Theory, InlineData(""), InlineData(" lead"), InlineData("two  spaces"), InlineData("ünicode\u0001")]
    public void A_bad_keyword_is_refused(string keyword)
        => Assert.Contains("keyword", Assert.Throws<ArgumentException>(() => Png.Encode(PngRoundTripTests.RandomImage(2, 2, 3, 1), text: [(keyword, "x")])).Message);
}

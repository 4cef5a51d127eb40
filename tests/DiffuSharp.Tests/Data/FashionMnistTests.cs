// Fashion-MNIST from the dataset-fashion-mnist package (CI installs it) and the folder loaders' not-found errors.
using DiffuSharp.Data;
using DiffuSharp.Tests.Imaging;
using Xunit;

namespace DiffuSharp.Tests.Data;

public sealed class FashionMnistTests
{
    [Theory, InlineData(true, 60000), InlineData(false, 10000)]
    public void Loads_the_installed_dataset(bool train, int count)
    {
        ImageDataset ds;
        try { ds = FashionMnist.Load(train: train); }
        catch (DatasetNotFoundException e) { Assert.Fail(e.Message); return; }
        Assert.Equal((count, 1, 28, 28), (ds.Count, ds.Channels, ds.Height, ds.Width));
        Assert.Equal(10, ds.NumClasses);
        var perClass = new int[10];
        foreach (int l in ds.Labels!) perClass[l]++;
        Assert.All(perClass, n => Assert.Equal(count / 10, n));   // Fashion-MNIST is balanced
        Assert.Equal(-1f, ds.Images.Min());
        Assert.Equal(1f, ds.Images.Max());
        Assert.Equal(10, FashionMnist.ClassNames.Count);
    }

    [Fact]
    public void Missing_folder_says_how_to_install()
    {
        var e = Assert.Throws<DatasetNotFoundException>(() => FashionMnist.Load("/nonexistent/fashion"));
        Assert.Contains("sudo apt-get install dataset-fashion-mnist", e.Message);
        Assert.Contains("/nonexistent/fashion", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Mnist_idx_folder_with_plain_files_and_a_missing_label_file()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(Path.Combine(dir.Path, "t10k-images-idx3-ubyte"), IdxTests.IdxBytes(2051, [2, 28, 28], new byte[2 * 784]));
        var e = Assert.Throws<DatasetNotFoundException>(() => Mnist.Load(dir.Path, train: false));
        Assert.Contains("t10k-labels-idx1-ubyte.gz", e.Message);
        File.WriteAllBytes(Path.Combine(dir.Path, "t10k-labels-idx1-ubyte"), IdxTests.IdxBytes(2049, [2], [3, 9]));
        var ds = Mnist.Load(dir.Path, train: false);
        Assert.Equal((2, 28, 28), (ds.Count, ds.Height, ds.Width));
        Assert.Equal(new[] { 3, 9 }, ds.Labels);
        Assert.Throws<DatasetNotFoundException>(() => Mnist.Load(dir.Path, train: true));
    }
}

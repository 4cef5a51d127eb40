// A model folder's class names (class_names.txt): written by train when its data names its classes (a folder data set's
// class subfolders), read by sample's and interpolate's --class, by eval and by serve; Fashion-MNIST's names only for a
// 10-class folder without them; old folders (no file) load as before.
using DiffuSharp.Cli;
using DiffuSharp.Data;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.Server;
using DiffuSharp.Tests.Cli;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Models;

public sealed class ClassNamesTests
{
    [Fact]
    public void Names_round_trip_and_a_wrong_count_or_a_repeated_name_is_refused()
    {
        string dir = TrainingFixtures.TempFolder("class-names");
        try
        {
            ClassNames.Save(dir, ["cat", "Dog house", "fox"]);
            Assert.Equal("cat\nDog house\nfox\n", File.ReadAllText(Path.Combine(dir, ClassNames.FileName)));
            Assert.Equal(["cat", "Dog house", "fox"], ClassNames.Load(dir, 3));
            var wrongCount = Assert.Throws<InvalidDataException>(() => ClassNames.Load(dir, 4));
            Assert.Contains("names 3 classes, the model has 4", wrongCount.Message);
            File.WriteAllText(Path.Combine(dir, ClassNames.FileName), "cat\ndog_house\nDog House\n");
            var twice = Assert.Throws<InvalidDataException>(() => ClassNames.Load(dir, 3));
            Assert.Contains("'dog_house' and 'Dog House' are the same name", twice.Message);
            Assert.Throws<InvalidDataException>(() => ClassNames.Save(dir, ["a", "--"]));
            Assert.Null(ClassNames.Load(Path.Combine(dir, "none"), 3));                       // no file: no names
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Fashion_mnist_names_are_the_fallback_of_ten_class_folders_only()
    {
        string dir = TrainingFixtures.TempFolder("class-names-for");
        try
        {
            var ten = TrainingFixtures.TinyModel(classCond: true) with { NumClasses = 10 };
            var three = ten with { NumClasses = 3 };
            Assert.Equal(FashionMnist.ClassNames, ClassNames.For(dir, ten));
            Assert.Null(ClassNames.For(dir, three));
            Assert.Null(ClassNames.For(dir, TrainingFixtures.TinyModel()));
            ClassNames.Save(dir, ["a", "b", "c"]);
            Assert.Equal(["a", "b", "c"], ClassNames.For(dir, three));
            Assert.True(ClassNames.AreFashionMnist(["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]));
            Assert.False(ClassNames.AreFashionMnist([.. FashionMnist.ClassNames.Reverse()]));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>root/cat/*.png (3), root/dog/*.png (2), root/dog/more/x.png (1), and a note that is not an image.</summary>
    static string ClassFolders(string dir)
    {
        string root = Path.Combine(dir, "classes");
        foreach (var sub in new[] { "cat", "dog", Path.Combine("dog", "more") }) Directory.CreateDirectory(Path.Combine(root, sub));
        for (int i = 0; i < 3; i++) CliModelFixture.PngFile(Path.Combine(root, "cat"), $"c{i}.png", phase: i);
        for (int i = 0; i < 2; i++) CliModelFixture.PngFile(Path.Combine(root, "dog"), $"d{i}.png", phase: 3 + i);
        CliModelFixture.PngFile(Path.Combine(root, "dog", "more"), "x.png", phase: 6);
        File.WriteAllText(Path.Combine(root, "notes.txt"), "not an image");
        return root;
    }

    [Fact]
    public void A_folder_of_class_subfolders_loads_labelled_with_the_subfolder_names()
    {
        string dir = TrainingFixtures.TempFolder("class-folders");
        try
        {
            string root = ClassFolders(dir);
            var data = ImageFolder.LoadClasses(root, 8, 1, out var report);
            Assert.Equal(["cat", "dog"], data.ClassNames);
            Assert.Equal(2, data.NumClasses);
            Assert.Equal([0, 0, 0, 1, 1, 1], data.Labels!);
            var unlabelled = ImageFolder.Load(root, 8, 1);                                    // the same images, same order
            Assert.Equal(unlabelled.Images, data.Images);
            Assert.Equal(["notes.txt"], report.Skipped);

            Directory.CreateDirectory(Path.Combine(root, "empty"));
            Assert.Contains("class subfolder empty holds no images", Assert.Throws<InvalidDataException>(() => ImageFolder.LoadClasses(root, 8, 1, out _)).Message);
            Directory.Delete(Path.Combine(root, "empty"));
            CliModelFixture.PngFile(root, "loose.png");
            Assert.Contains("image loose.png is not in a class subfolder", Assert.Throws<InvalidDataException>(() => ImageFolder.LoadClasses(root, 8, 1, out _)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Train_on_class_subfolders_writes_their_names_and_sample_takes_them()
    {
        string dir = TrainingFixtures.TempFolder("class-train");
        try
        {
            string root = ClassFolders(dir), run = Path.Combine(dir, "run");
            string[] train = ["train", "--preset", "tiny", "--image-size", "8", "--diffusion-steps", "50", "--class-cond", "true",
                "--data", "folder:" + root, "--batch-size", "2", "--steps", "1", "--out", run];
            // the model's default 10 classes do not fit 2 named ones
            TrainSampleEndToEndTests.AssertOneLineError(train, "the dataset has 2 named classes (cat, dog), the model's num_classes is 10");
            var (code, _, stderr) = TrainSampleEndToEndTests.Cli([.. train, "--num-classes", "2"]);
            Assert.True(code == 0, stderr);
            string model = Path.Combine(run, "model");
            Assert.Equal("cat\ndog\n", File.ReadAllText(Path.Combine(model, ClassNames.FileName)));

            (code, _, stderr) = TrainSampleEndToEndTests.Cli(["sample", "--model", model, "--class", "Dog", "--n", "1", "--steps", "2",
                "--out", Path.Combine(dir, "g.png")]);
            Assert.True(code == 0, stderr);
            TrainSampleEndToEndTests.AssertOneLineError(["sample", "--model", model, "--class", "shirt", "--out", Path.Combine(dir, "x.png")],
                "--class 'shirt' is not a class of the model; expected a label 0..1 or a class name: 0 cat, 1 dog");

            // serve lists the folder with its names
            var catalog = ModelCatalog.Scan(run);
            Assert.Equal(["cat", "dog"], catalog.Find("model")!.ClassNames);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Folders_without_names_load_as_before()
    {
        string dir = TrainingFixtures.TempFolder("class-old");
        try
        {
            string four = CliModelFixture.TinyModelFolder(dir, classCond: true, numClasses: 4);           // no class_names.txt
            string[] sample = ["sample", "--model", four, "--n", "1", "--steps", "2", "--out", Path.Combine(dir, "g.png")];
            Assert.Equal(0, TrainSampleEndToEndTests.Cli([.. sample, "--class", "3"]).Code);
            TrainSampleEndToEndTests.AssertOneLineError([.. sample, "--class", "shirt"], "the model's 4 classes have no names: pass a label 0..3");

            string ten = CliModelFixture.TinyModelFolder(Path.Combine(dir, "ten"), classCond: true, numClasses: 10);
            Assert.Equal(0, TrainSampleEndToEndTests.Cli(["sample", "--model", ten, "--n", "1", "--steps", "2", "--class", "ankle boot",
                "--out", Path.Combine(dir, "g.png")]).Code);
            Assert.Equal(["0", "1", "2", "3"], ModelCatalog.Scan(dir).Find("model-cc")!.ClassNames);
            Assert.Equal(FashionMnist.ClassNames, ModelCatalog.Scan(Path.Combine(dir, "ten")).Find("model-cc")!.ClassNames);

            ClassNames.Save(four, ["a", "b", "c", "d"]);
            float[] Sample(string cls)
            {
                string npy = Path.Combine(dir, $"s{Guid.NewGuid():N}.npy");
                var (code, _, stderr) = TrainSampleEndToEndTests.Cli([.. sample, "--class", cls, "--seed", "3", "--save-npy", npy]);
                Assert.True(code == 0, stderr);
                return Npy.ReadFloat32(npy).Data;
            }
            Assert.Equal(Sample("3"), Sample("D"));                                  // the name is the label
            Assert.NotEqual(Sample("0"), Sample("d"));                               // and the label matters
            TrainSampleEndToEndTests.AssertOneLineError([.. sample, "--class", "shirt"], "0 a, 1 b, 2 c, 3 d");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

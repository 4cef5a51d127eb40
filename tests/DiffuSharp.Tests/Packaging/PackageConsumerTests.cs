// The NuGet package as a user gets it: packed from this repository into a local folder, referenced by a fresh
// console project whose Program.cs is README.md's "Use it from C#" code, exactly (ConsumerProject.ProgramFromReadme);
// the program samples from the shipped model, trains a few steps on a folder of PNGs and runs the Stable Diffusion
// pipeline on the tiny fixture pipeline. The command line, packed as a dotnet tool and installed from the same
// folder, samples from the model that travels inside it.
using System.Text.Json.Nodes;
using DiffuSharp.Imaging;
using DiffuSharp.Tests.Training;
using Xunit;

namespace DiffuSharp.Tests.Packaging;

public sealed class PackageConsumerTests(Xunit.Abstractions.ITestOutputHelper log)
{
    [Fact]
    public void The_readme_examples_run_in_a_project_that_references_the_package()
    {
        string root = TrainingFixtures.TempFolder("consumer");
        try
        {
            string program = ConsumerProject.ProgramFromReadme(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md")));
            var consumer = ConsumerProject.Create(root, program, tool: true);

            // the package: the library, its XML docs, the README and the runtime settings for consumers
            using (var nupkg = System.IO.Compression.ZipFile.OpenRead(Path.Combine(consumer.Feed, $"DiffuSharp.{ConsumerProject.Version}.nupkg")))
            {
                var entries = nupkg.Entries.Select(e => e.FullName).ToHashSet();
                Assert.Contains("lib/net10.0/DiffuSharp.dll", entries);
                Assert.Contains("lib/net10.0/DiffuSharp.xml", entries);
                Assert.Contains("README.md", entries);
                Assert.Contains("buildTransitive/DiffuSharp.props", entries);
            }
            // the consumer runs without tiered compilation, as the package's props ask
            var rc = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(consumer.Dll, ".runtimeconfig.json")))!;
            Assert.False(rc["runtimeOptions"]!["configProperties"]!["System.Runtime.TieredCompilation"]!.GetValue<bool>());

            // what the README's examples read: the shipped model, a folder of images, the tiny pipeline
            string work = Path.Combine(root, "work");
            CopyFolder(Path.Combine(TestPaths.RepoRoot, "models", "fashion-mnist"), Path.Combine(work, "models", "fashion-mnist"));
            CopyFolder(Path.Combine(TestPaths.Diffusers, "pipelines", "tiny_sd"), Path.Combine(work, "tiny_sd"));
            Directory.CreateDirectory(Path.Combine(work, "my-images"));
            for (int i = 0; i < 8; i++) Cli.CliModelFixture.PngFile(Path.Combine(work, "my-images"), $"{i}.png", size: 28, phase: i);

            var (code, output) = consumer.Dotnet(work, consumer.Dll);
            log.WriteLine(output);
            Assert.True(code == 0, output);
            var grid = Png.Read(Path.Combine(work, "garments.png"));
            Assert.True(grid.Width >= 10 * 28 && grid.Height >= 28 && grid.Height < 2 * 28, $"garments.png is {grid.Width}x{grid.Height}");   // one row of ten
            Assert.True(File.Exists(Path.Combine(work, "runs", "mine", "model", "model.safetensors")));
            Assert.Equal(5, File.ReadAllLines(Path.Combine(work, "runs", "mine", "log.jsonl")).Length);
            Assert.Contains("step 5: loss ", output);
            Assert.Contains("image 1x3x64x64", output);

            // the dotnet tool, with the shipped model inside it
            string diffusharp = consumer.InstallTool();
            var (toolCode, toolOutput) = consumer.Run(diffusharp, work, "sample", "--n", "2", "--steps", "2", "--class", "ankle boot", "--out", Path.Combine(work, "tool.png"));
            Assert.True(toolCode == 0, toolOutput);
            Assert.Contains("wrote 2 samples", toolOutput);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public void The_readme_program_gathers_usings_and_scopes_each_block()
    {
        string readme = "# x\n## Use it from C#\ntext\n```csharp\nusing A;\nvar x = 1;\n```\n```bash\nno\n```\n```csharp\nusing B;\nusing A;\nvar x = 2;\n```\n## Next\n```csharp\nusing C;\n```\n";
        Assert.Equal("using A;\nusing B;\n\n{\n    var x = 1;\n    \n}\n{\n    var x = 2;\n    \n}\n", ConsumerProject.ProgramFromReadme(readme).ReplaceLineEndings("\n"));
        Assert.Throws<InvalidDataException>(() => ConsumerProject.ProgramFromReadme("# nothing here\n"));
    }

    static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string dst = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            File.Copy(f, dst);
        }
    }
}

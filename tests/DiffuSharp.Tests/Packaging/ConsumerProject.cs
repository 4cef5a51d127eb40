// A program of one's own that uses DiffuSharp from NuGet: `dotnet pack` of the library (and of the command line as
// a dotnet tool) into a local feed, and a fresh console project that references the package from that feed and
// whose Program.cs is the README's "Use it from C#" code blocks. Every dotnet call gets its own NuGet package folder
// (NUGET_PACKAGES), so a package packed again with the same version is never taken stale from a cache; the
// machine's package folder serves as a second source for the library's own dependencies (no network needed).
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace DiffuSharp.Tests.Packaging;

internal sealed class ConsumerProject
{
    public const string Version = "0.1.0";
#if DEBUG
    public const string Configuration = "Debug";
#else
    public const string Configuration = "Release";
#endif

    public required string Root { get; init; }
    public string Feed => Path.Combine(Root, "feed");
    public string Project => Path.Combine(Root, "consumer");
    public string Packages => Path.Combine(Root, "packages");
    public string Dll => Path.Combine(Project, "bin", "Release", "net10.0", "consumer.dll");

    /// <summary>The C# blocks of README.md's "Use it from C#" section, as one top-level program: the using
    /// directives gathered at the top (each once), every block's statements in a scope of their own.</summary>
    public static string ProgramFromReadme(string readme)
    {
        var section = Regex.Match(readme, @"^## Use it from C#\n(.*?)(?=^## )", RegexOptions.Multiline | RegexOptions.Singleline);
        if (!section.Success) throw new InvalidDataException("README.md has no section \"## Use it from C#\"");
        var blocks = Regex.Matches(section.Groups[1].Value, @"^```csharp\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)
            .Select(m => m.Groups[1].Value).ToList();
        if (blocks.Count == 0) throw new InvalidDataException("README.md's \"Use it from C#\" has no csharp block");
        var usings = new SortedSet<string>(StringComparer.Ordinal);
        var body = new StringBuilder();
        foreach (var block in blocks)
        {
            body.AppendLine("{");
            foreach (var line in block.Split('\n'))
                if (line.StartsWith("using ", StringComparison.Ordinal) && line.TrimEnd().EndsWith(';')) usings.Add(line.TrimEnd());
                else body.AppendLine("    " + line);
            body.AppendLine("}");
        }
        return string.Join("\n", usings) + "\n\n" + body;
    }

    /// <summary>Packs the library (and, with tool, the command line) from the repository into Root/feed and writes
    /// Root/consumer; its Program.cs is <paramref name="program"/>. extraProperties go into its PropertyGroup.</summary>
    public static ConsumerProject Create(string root, string program, bool tool = false, string extraProperties = "")
    {
        var p = new ConsumerProject { Root = root };
        Directory.CreateDirectory(p.Feed);
        p.Pack(Path.Combine(TestPaths.RepoRoot, "src", "DiffuSharp", "DiffuSharp.csproj"));
        if (tool) p.Pack(Path.Combine(TestPaths.RepoRoot, "src", "DiffuSharp.Cli", "DiffuSharp.Cli.csproj"));
        Directory.CreateDirectory(p.Project);
        File.WriteAllText(Path.Combine(p.Project, "consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                {extraProperties}
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="DiffuSharp" Version="{Version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(p.Project, "Program.cs"), program);
        File.WriteAllText(Path.Combine(p.Project, "nuget.config"), p.NugetConfig());
        var (code, output) = p.Dotnet(p.Project, "build", "-c", "Release", "--disable-build-servers", "-nodeReuse:false");
        if (code != 0) throw new InvalidOperationException("the consumer project did not build:\n" + Tail(output));
        return p;
    }

    string NugetConfig()
    {
        string machine = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } np ? np
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
                <add key="machine" value="{machine}" />
              </packageSources>
            </configuration>
            """;
    }

    void Pack(string csproj)
    {
        // --no-build: the test run built the projects already; where it did not (another configuration), build.
        var (code, output) = Dotnet(Root, "pack", csproj, "-c", Configuration, "-o", Feed, "--no-build", "-nodeReuse:false");
        if (code != 0) (code, output) = Dotnet(Root, "pack", csproj, "-c", Configuration, "-o", Feed, "--disable-build-servers", "-nodeReuse:false");
        if (code != 0) throw new InvalidOperationException($"dotnet pack {Path.GetFileName(csproj)} failed:\n" + Tail(output));
    }

    /// <summary>Installs DiffuSharp.Tool from the feed into Root/tools; returns the path of its `diffusharp` command.</summary>
    public string InstallTool()
    {
        string tools = Path.Combine(Root, "tools");
        File.WriteAllText(Path.Combine(Root, "nuget.config"), NugetConfig());
        var (code, output) = Dotnet(Root, "tool", "install", "DiffuSharp.Tool", "--version", Version, "--tool-path", tools, "--configfile", Path.Combine(Root, "nuget.config"));
        if (code != 0) throw new InvalidOperationException("dotnet tool install failed:\n" + Tail(output));
        return Path.Combine(tools, OperatingSystem.IsWindows() ? "diffusharp.exe" : "diffusharp");
    }

    /// <summary>Runs the dotnet CLI with this project's package folder; returns the exit code and stdout + stderr.</summary>
    public (int Code, string Output) Dotnet(string workDir, params string[] args) => Run("dotnet", workDir, args);

    public (int Code, string Output) Run(string file, string workDir, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NUGET_PACKAGES"] = Packages;
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        // the test host's own MSBuild settings must not leak into a fresh build
        foreach (var key in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly" }) psi.Environment.Remove(key);
        using var process = Process.Start(psi)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(600_000)) { process.Kill(entireProcessTree: true); throw new TimeoutException($"{file} {string.Join(" ", args)} ran over 10 minutes"); }
        process.WaitForExit();
        return (process.ExitCode, output.ToString());
    }

    static string Tail(string s) => s.Length <= 4000 ? s : s[^4000..];
}

// What `sample` checks before it samples anything, so a bad flag fails in milliseconds, not after minutes of
// sampling: every output path (its folder exists and is writable, it is not a folder, its extension matches what
// is written: PNG for --out and --trajectory, .npy for --save-npy), and the sizes --n implies, in 64-bit: the
// values one array can hold, the PNG grid's side limit, and the memory the samples and the grid need against
// what the process may use. Also the noise file: at least one sample, every value finite.
using System.Globalization;
using DiffuSharp.Imaging;

namespace DiffuSharp.Cli;

internal static class SampleChecks
{
    /// <summary>Checks --out, --save-npy and --trajectory; throws CliException naming the flag.</summary>
    public static void Outputs(ParsedOptions o)
    {
        Output(o, "out", ImageFile.WritableExtensions, "an image grid (PNG or JPEG)");
        Output(o, "save-npy", [".npy"], "a NumPy .npy array");
        Output(o, "trajectory", ImageFile.WritableExtensions, "an image strip (PNG or JPEG)");
    }

    static void Output(ParsedOptions o, string flag, IReadOnlyList<string> extensions, string what)
    {
        if (o.String(flag) is not { } path) return;
        string names = extensions.Count == 1 ? extensions[0] : string.Join(", ", extensions.Take(extensions.Count - 1)) + " or " + extensions[^1];
        if (path.Length == 0) throw new CliException($"sample: --{flag} needs a file name");
        if (Directory.Exists(path)) throw new CliException($"sample: --{flag} {path} is a folder; give a file name ending in {names}");
        if (!extensions.Any(e => path.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
            throw new CliException($"sample: --{flag} {path}: writes {what}, so the name must end in {names}");
        string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(folder)) throw new CliException($"sample: --{flag} {path}: folder {folder} does not exist");
        string probe = Path.Combine(folder, $".diffusharp-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try { using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { } }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"sample: --{flag} {path}: cannot write in {folder} ({e.Message})");
        }
    }

    /// <summary>Checks that n samples of C×H×W fit one array, one PNG grid and the memory this process may use.</summary>
    public static void Sizes(string flag, long n, int channels, int height, int width, bool trajectory)
    {
        long per = (long)channels * height * width, values = n * per;
        if (values > Array.MaxLength)
            throw new CliException(string.Create(CultureInfo.InvariantCulture, $"sample: {flag} {n} asks for {values:N0} values (n×C×H×W = {n}×{channels}×{height}×{width}), more than one array holds ({Array.MaxLength:N0}); at most {Array.MaxLength / per:N0} samples per run"));
        long side = (long)Math.Ceiling(Math.Sqrt(n)), gridSide = side * (Math.Max(height, width) + 2) + 2;
        if (gridSide > Png.MaxDimension)
        {
            long fit = (Png.MaxDimension - 2) / (Math.Max(height, width) + 2);
            throw new CliException(string.Create(CultureInfo.InvariantCulture, $"sample: {flag} {n} makes a {gridSide}-pixel-wide PNG grid, over the {Png.MaxDimension} limit; at most {fit * fit:N0} samples of {width}×{height} per grid"));
        }
        // The samples (float32), the grid (one byte per value and padding) and the noise of a batch; the network's
        // activations come on top, so this is the least the run needs.
        long need = values * 4 + gridSide * gridSide * channels + (trajectory ? 40 * per * 4 : 0);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (need > available)
            throw new CliException($"sample: {flag} {n} needs at least {Gb(need)} for its samples and grid, more than the {Gb(available)} this process may use; lower {flag}");
    }

    /// <summary>A noise file's data: at least one sample, and finite (x_T with NaN or ±∞ would sample nonsense).</summary>
    public static void Noise(string path, int[] shape, float[] data)
    {
        if (shape.Length > 0 && shape[0] == 0) throw new InvalidDataException($"{path}: holds 0 samples; the noise needs at least one");
        for (int i = 0; i < data.Length; i++)
            if (!float.IsFinite(data[i]))
            {
                long per = data.Length / Math.Max(1, shape.Length > 0 ? shape[0] : 1);
                throw new InvalidDataException($"{path}: value {i} (sample {i / Math.Max(1, per)}) is {(float.IsNaN(data[i]) ? "NaN" : data[i] > 0 ? "+inf" : "-inf")}; noise must be finite");
            }
    }

    static string Gb(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:0.0} GB");
}

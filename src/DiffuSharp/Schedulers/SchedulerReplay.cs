// Replays a diffusers scheduler fixture (the format of tests/DiffuSharp.Tests/Fixtures/diffusers/README.upstream.md,
// "Scheduler fixtures") through DiffuSharp's scheduler and measures every recorded tensor: the tables (betas,
// alphas_cumprod), timesteps, sigmas, init_noise_sigma, then for each step the model input and — fed the recorded
// model output and noise — prev_sample and pred_original_sample, and finally add_noise on a fresh instance (timesteps set, no step taken).
// Used by the tests and by `diffusharp verify-diffusers`.
using System.Text.Json;
using DiffuSharp.Diffusion;
using DiffuSharp.IO;

namespace DiffuSharp.Schedulers;

/// <summary>One compared tensor: rel_err = max|ours − reference| / max|reference| (max_abs when the reference is all
/// zeros); Passed when rel_err ≤ Tolerance.</summary>
public sealed record ReplayComparison(string Tensor, double RelErr, double MaxAbs, double Tolerance)
{
    /// <summary>True when <see cref="RelErr"/> is within <see cref="Tolerance"/>.</summary>
    public bool Passed => RelErr <= Tolerance;
}

/// <summary>Replays diffusers scheduler fixtures (<c>sched_*.safetensors</c>).</summary>
public static class SchedulerReplay
{
    /// <summary>The tolerance of the parity contract: 1e-5 relative.</summary>
    public const double DefaultTolerance = 1e-5;

    /// <summary>Whether <paramref name="file"/> is a scheduler fixture (its metadata names a scheduler class).</summary>
    public static bool IsSchedulerFixture(SafeTensorsFile file) => file.Metadata.ContainsKey("scheduler_class");

    /// <summary>Builds the recorded scheduler (class, config, step options) without running it.</summary>
    public static Scheduler BuildScheduler(SafeTensorsFile file)
    {
        string cls = Meta(file, "scheduler_class");
        var config = SchedulerConfig.FromJson(Meta(file, "config"), $"{file.SourceName} (metadata 'config')", cls);
        double eta = 0;
        if (file.Metadata.TryGetValue("step_kwargs", out var kw) && !string.IsNullOrWhiteSpace(kw))
        {
            using var doc = JsonDocument.Parse(kw);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "eta" && p.Value.ValueKind == JsonValueKind.Number) eta = p.Value.GetDouble();
                else if (p.Name is "s_churn" && p.Value.ValueKind == JsonValueKind.Number && p.Value.GetDouble() == 0) { }
                else throw new InvalidDataException($"{file.SourceName}: step argument '{p.Name}' = {p.Value.GetRawText()} is not supported by the replay");
            }
        }
        return SchedulerFactory.Create(config, eta);
    }

    /// <summary>Replays the run recorded in <paramref name="file"/> and returns one comparison per recorded tensor.</summary>
    /// <exception cref="InvalidDataException">The file is not a scheduler fixture or lacks a tensor the format requires.</exception>
    public static IReadOnlyList<ReplayComparison> Run(SafeTensorsFile file, double tolerance = DefaultTolerance)
    {
        var results = new List<ReplayComparison>();
        void Compare(string name, ReadOnlySpan<double> ours, double tol) => results.Add(Measure(name, ours, Doubles(file, name), tol));
        void CompareTensor(string name, Tensor ours) => Compare(name, ToDoubles(ours), tolerance);

        var scheduler = BuildScheduler(file);
        if (file.Contains("betas")) Compare("betas", scheduler.Betas, tolerance);
        if (file.Contains("alphas_cumprod")) Compare("alphas_cumprod", scheduler.AlphasCumprod, tolerance);
        int n = int.Parse(Meta(file, "num_inference_steps"), System.Globalization.CultureInfo.InvariantCulture);
        scheduler.SetTimesteps(n);
        // integer timesteps must be equal; float ones (Karras sigmas) within the tolerance
        Compare("timesteps", scheduler.Timesteps.ToArray(), file.Info("timesteps").DType == "I64" ? 0 : tolerance);
        if (file.Contains("sigmas"))
        {
            if (scheduler.Sigmas is null) results.Add(new("sigmas", double.PositiveInfinity, double.PositiveInfinity, tolerance));
            else Compare("sigmas", scheduler.Sigmas.ToArray(), tolerance);
        }
        if (file.Contains("init_noise_sigma")) Compare("init_noise_sigma", [scheduler.InitNoiseSigma], tolerance);

        var sample = Load(file, "sample_init");
        for (int i = 0; file.Contains($"step{i:D2}.model_output"); i++)
        {
            string p = $"step{i:D2}.";
            double t = Snap(Doubles(file, p + "timestep")[0], scheduler.Timesteps, tolerance);
            CompareTensor(p + "model_input", scheduler.ScaleModelInput(sample, t));
            NoiseSource noise = file.Contains(p + "noise") ? Load(file, p + "noise") : null;
            var output = scheduler.Step(Load(file, p + "model_output"), t, sample, noise);
            CompareTensor(p + "prev_sample", output.PrevSample);
            if (file.Contains(p + "pred_original_sample"))
            {
                if (output.PredOriginalSample is null) results.Add(new(p + "pred_original_sample", double.PositiveInfinity, double.PositiveInfinity, tolerance));
                else CompareTensor(p + "pred_original_sample", output.PredOriginalSample);
            }
            sample = output.PrevSample;
        }

        if (file.Contains("add_noise.result"))
        {
            // a fresh instance with the run's timesteps (the recorded add_noise timesteps are among them)
            var fresh = BuildScheduler(file);
            fresh.SetTimesteps(n);
            var ts = Doubles(file, "add_noise.timesteps").Select(t => Snap(t, fresh.Timesteps, tolerance)).ToArray();
            var noised = fresh.AddNoise(Load(file, "add_noise.original"), Load(file, "add_noise.noise"), ts);
            CompareTensor("add_noise.result", noised);
        }
        return results;
    }

    /// <summary>max|a − b| / max|b| (max|a − b| when b is all zeros) and max|a − b|.</summary>
    public static ReplayComparison Measure(string name, ReadOnlySpan<double> ours, ReadOnlySpan<double> reference, double tolerance)
    {
        if (ours.Length != reference.Length)
            return new(name + $" (length {ours.Length}, reference {reference.Length})", double.PositiveInfinity, double.PositiveInfinity, tolerance);
        double maxAbs = 0, maxRef = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = Math.Abs(ours[i] - reference[i]);
            if (!(d <= maxAbs)) maxAbs = double.IsNaN(d) ? double.PositiveInfinity : d;
            maxRef = Math.Max(maxRef, Math.Abs(reference[i]));
        }
        return new(name, maxRef > 0 ? maxAbs / maxRef : maxAbs, maxAbs, tolerance);
    }

    // A recorded fractional timestep (Karras sigmas) may differ from ours in the last float32 bits (log and pow of
    // numpy vs .NET); the timesteps comparison reports that difference, and the run continues on our equal-within-
    // tolerance timestep, as a pipeline passes the scheduler's own timesteps back to it.
    static double Snap(double t, IReadOnlyList<double> schedule, double tolerance)
    {
        foreach (var s in schedule) if (s == t) return s;
        foreach (var s in schedule) if (Math.Abs(s - t) <= tolerance * Math.Max(1, Math.Abs(t))) return s;
        return t;
    }

    static string Meta(SafeTensorsFile file, string key) =>
        file.Metadata.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"{file.SourceName}: metadata '{key}' missing: not a scheduler fixture");

    static Tensor Load(SafeTensorsFile file, string name)
    {
        Require(file, name);
        var info = file.Info(name);
        var shape = info.Shape.Select(d => (int)d).ToArray();
        return Tensor.FromArray(info.DType == "F32" ? file.ReadFloat32(name) : Doubles(file, name).Select(d => (float)d).ToArray(), shape);
    }

    static double[] Doubles(SafeTensorsFile file, string name)
    {
        Require(file, name);
        return file.Info(name).DType switch
        {
            "F32" => file.ReadFloat32(name).Select(f => (double)f).ToArray(),
            "F64" => file.ReadFloat64(name),
            "I64" => file.ReadInt64(name).Select(v => (double)v).ToArray(),
            var d => throw new InvalidDataException($"{file.SourceName}: tensor '{name}' has dtype {d}, expected F32, F64 or I64"),
        };
    }

    static void Require(SafeTensorsFile file, string name)
    {
        if (!file.Contains(name)) throw new InvalidDataException($"{file.SourceName}: tensor '{name}' missing");
    }

    static double[] ToDoubles(Tensor t) => t.Contiguous().ToArray().Select(f => (double)f).ToArray();
}

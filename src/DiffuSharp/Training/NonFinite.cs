// Guarding training against divergence: a NaN or ±∞ in a step's loss or gradient stops the run (or, when asked,
// skips that step without touching weights, optimizer or EMA), and no save ever writes non-finite state.
// The reference (improved-diffusion) logs NaN losses and keeps going; a diverged run then overwrites every good
// checkpoint with NaNs. Here the first non-finite step is the last one taken.
namespace DiffuSharp.Training;

/// <summary>A training step produced a non-finite loss or gradient, or a save found non-finite state.
/// <see cref="Step"/> is the 1-based step it happened at.</summary>
public sealed class NonFiniteTrainingException(long step, string message) : Exception(message)
{
    /// <summary>The 1-based step whose loss or gradient was not finite (or the step of the refused save).</summary>
    public long Step { get; } = step;
}

/// <summary>Finiteness scans over float buffers.</summary>
public static class Finite
{
    /// <summary>Index of the first NaN or ±∞ in values, or −1 when all are finite.</summary>
    public static long FirstNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return -1;
    }

    /// <summary>"NaN", "+inf" or "-inf".</summary>
    public static string Describe(double v) => double.IsNaN(v) ? "NaN" : v > 0 ? "+inf" : "-inf";
}

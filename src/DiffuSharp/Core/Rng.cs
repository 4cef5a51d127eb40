// Seeded, explicit random numbers: xoshiro256** (Blackman & Vigna) for uniform bits, Box–Muller in double for
// normals. The stream is sequential, so the same seed gives the same numbers whatever the thread count, and the
// whole state (four words and a cached normal) can be saved in a checkpoint and restored.
using System.Numerics;
using System.Runtime.CompilerServices;

namespace DiffuSharp;

/// <summary>A seeded random number generator. Not thread-safe: give each consumer its own.</summary>
public sealed class Rng
{
    ulong _s0, _s1, _s2, _s3;
    double _spareNormal;
    bool _hasSpare;

    /// <summary>A generator whose every draw follows from <paramref name="seed"/> (the same numbers on every machine).</summary>
    public Rng(ulong seed)
    {
        // SplitMix64 expands the seed into a state that is never all zeros.
        ulong z = seed;
        _s0 = SplitMix(ref z); _s1 = SplitMix(ref z); _s2 = SplitMix(ref z); _s3 = SplitMix(ref z);
    }

    static ulong SplitMix(ref ulong z)
    {
        ulong r = z += 0x9E3779B97F4A7C15UL;
        r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9UL;
        r = (r ^ (r >> 27)) * 0x94D049BB133111EBUL;
        return r ^ (r >> 31);
    }

    /// <summary>The next 64 uniformly distributed bits of the xoshiro256** stream.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong NextUInt64()
    {
        ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, 1) as float, 24 random bits (never rounds up to 1).</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

    /// <summary>Uniform integer in [0, maxExclusive), unbiased (Lemire's method).</summary>
    public int NextInt(int maxExclusive)
    {
        if (maxExclusive <= 0) throw new ArgumentOutOfRangeException(nameof(maxExclusive), $"must be positive, got {maxExclusive}");
        ulong range = (ulong)maxExclusive;
        while (true)
        {
            ulong x = NextUInt64() >> 32;
            ulong m = x * range;
            if ((uint)m >= (uint)((0x1_0000_0000UL - range) % range)) return (int)(m >> 32);
        }
    }

    /// <summary>Standard normal, Box–Muller in double precision (deterministic on every machine).</summary>
    public double NextNormal()
    {
        if (_hasSpare) { _hasSpare = false; return _spareNormal; }
        double u1 = 1.0 - NextDouble();                   // (0, 1]: log(u1) is finite
        double u2 = NextDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        double theta = 2.0 * Math.PI * u2;
        _spareNormal = r * Math.Sin(theta);
        _hasSpare = true;
        return r * Math.Cos(theta);
    }

    /// <summary>Fills <paramref name="dst"/> with normal draws N(mean, std²).</summary>
    public void FillNormal(Span<float> dst, float mean = 0f, float std = 1f)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = (float)(mean + std * NextNormal());
    }

    /// <summary>Fills <paramref name="dst"/> with uniform draws in [low, high).</summary>
    public void FillUniform(Span<float> dst, float low = 0f, float high = 1f)
    {
        float scale = high - low;
        for (int i = 0; i < dst.Length; i++) dst[i] = low + scale * NextFloat();
    }

    /// <summary>The whole state, for checkpoints.</summary>
    public RngState GetState() => new(_s0, _s1, _s2, _s3, _hasSpare, _spareNormal);

    /// <summary>Restores a state taken by <see cref="GetState"/>, so the draws continue exactly where they were; throws
    /// <see cref="ArgumentException"/> for the invalid all-zero state.</summary>
    public void SetState(RngState s)
    {
        if ((s.S0 | s.S1 | s.S2 | s.S3) == 0) throw new ArgumentException("RNG state of all zeros is invalid.", nameof(s));
        (_s0, _s1, _s2, _s3, _hasSpare, _spareNormal) = (s.S0, s.S1, s.S2, s.S3, s.HasSpare, s.Spare);
    }

    /// <summary>An independent generator derived from this one (for a worker or a sub-task), advancing this one.</summary>
    public Rng Fork() => new(NextUInt64());
}

/// <summary>The whole state of an <see cref="Rng"/>: the four xoshiro256** words and the cached second Box–Muller
/// normal.</summary>
/// <param name="S0">xoshiro256** state word 0</param>
/// <param name="S1">state word 1</param>
/// <param name="S2">state word 2</param>
/// <param name="S3">state word 3 (the four words are never all zero)</param>
/// <param name="HasSpare">whether a second normal from the last Box–Muller pair is waiting</param>
/// <param name="Spare">that cached normal (meaningless when HasSpare is false)</param>
public readonly record struct RngState(ulong S0, ulong S1, ulong S2, ulong S3, bool HasSpare, double Spare);

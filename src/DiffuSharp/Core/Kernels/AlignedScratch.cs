// Scratch memory for the vector kernels with its first float on a 64-byte boundary. A managed array's elements start
// 16 bytes past an 8-byte-aligned object, so a Vector512 load or store into a plain rented array usually straddles
// two cache lines, and costs about two accesses (measured: the Winograd convolution 16-23% slower on such scratch,
// the lane norm's per-lane tables likewise on the stack).
using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DiffuSharp.Kernels;

/// <summary>At least the asked number of floats rented from <see cref="ArrayPool{T}"/>, pinned until disposed, at
/// <see cref="Pointer"/> (64-byte aligned; contents undefined). <c>default</c> holds nothing (Pointer null).</summary>
internal unsafe struct AlignedScratch : IDisposable
{
    /// <summary>Floats to allocate beyond the ones wanted so that an aligned start always fits.</summary>
    public const int Slack = 15;

    readonly float[]? _array;
    GCHandle _handle;

    public readonly float* Pointer;

    public AlignedScratch(long floats)
    {
        _array = ArrayPool<float>.Shared.Rent(checked((int)floats + Slack));
        _handle = GCHandle.Alloc(_array, GCHandleType.Pinned);
        Pointer = Align((float*)_handle.AddrOfPinnedObject());
    }

    /// <summary>The first 64-byte boundary at or after p (p must have <see cref="Slack"/> floats to spare).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float* Align(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    public void Dispose()
    {
        if (_array is null || !_handle.IsAllocated) return;
        _handle.Free();
        ArrayPool<float>.Shared.Return(_array);
    }
}

// The kernel choices and block sizes that tests and benchmarks change (turn a path off, force another, shrink a
// block so a small input is cut into many): one immutable set of values, the defaults unless a scope says otherwise.
//
// A scope belongs to the code that opened it, not to the process: it is held in an AsyncLocal, so it follows the
// thread (and the tasks it starts) that opened it, and every parallel loop hands its caller's set to the pool
// workers that help it (WorkerPool.Run). Two tests that run at the same time on different threads therefore never see
// each other's switches, and a test comparing results bit for bit with the defaults cannot pick up a kernel another
// test has forced. Production code never opens a scope.
//
//     using (KernelSwitches.With(s => s with { LanesForced = true, WinogradDisabled = true }))
//         y = Tensor.Conv2d(x, w, b, 1, 1);
namespace DiffuSharp.Kernels;

internal sealed record KernelSwitches
{
    /// <summary>The values production runs with.</summary>
    public static readonly KernelSwitches Default = new();

    static readonly AsyncLocal<KernelSwitches?> s_scoped = new();

    /// <summary>Set on a pool worker while it runs a job: the switches of the thread that issued the job.</summary>
    [ThreadStatic] static KernelSwitches? t_job;

    /// <summary>The switches in force on this thread: the job's on a pool worker, else the innermost scope's, else
    /// <see cref="Default"/>.</summary>
    public static KernelSwitches Current => t_job ?? s_scoped.Value ?? Default;

    /// <summary>Runs the code inside the returned scope (until it is disposed) with <paramref name="switches"/>.</summary>
    public static Scope Use(KernelSwitches switches)
    {
        ArgumentNullException.ThrowIfNull(switches);
        var previous = s_scoped.Value;
        s_scoped.Value = switches;
        return new Scope(previous);
    }

    /// <summary>A scope with the current switches changed by <paramref name="change"/>.</summary>
    public static Scope With(Func<KernelSwitches, KernelSwitches> change) => Use(change(Current));

    /// <summary>Restores the switches that were in force when the scope was opened.</summary>
    public readonly struct Scope(KernelSwitches? previous) : IDisposable
    {
        public void Dispose() => s_scoped.Value = previous;
    }

    /// <summary>A pool worker takes on the switches of the job it runs; returns what it had before.</summary>
    internal static KernelSwitches? EnterJob(KernelSwitches switches)
    {
        var previous = t_job;
        t_job = switches;
        return previous;
    }

    internal static void LeaveJob(KernelSwitches? previous) => t_job = previous;

    // ---- convolution paths (Autograd/Ops.Conv2d.cs picks among them) ----

    /// <summary>The NCHW direct convolution off (benchmarks and tests time or check im2col on the same shapes).</summary>
    public bool DirectDisabled { get; init; }

    /// <summary>The direct convolution's Vector256 kernel on an AVX-512 machine.</summary>
    public bool DirectVector256 { get; init; }

    /// <summary>Floats of input one band of direct-convolution output pixels reads at most (ConvDirect.BandPixels).</summary>
    public int DirectBandFloats { get; init; } = 1 << 18;

    /// <summary>Up to this many output channels the direct convolution computes each on its own (ConvDirect.Narrow512).</summary>
    public int DirectNarrowOutputs { get; init; } = 4;

    /// <summary>The lane kernels (the batch in the vector lanes) off.</summary>
    public bool LanesDisabled { get; init; }

    /// <summary>The lane kernels for every supported shape and batch, not only where they are preferred.</summary>
    public bool LanesForced { get; init; }

    /// <summary>The lane kernels on a CPU without AVX-512, where .NET computes each Vector512 as two 256-bit halves:
    /// the same bits, slower, so production never takes them there.</summary>
    public bool LanesEmulated512 { get; init; }

    /// <summary>Bytes a group's padded lane tensor may take (ConvLanes.GroupImages).</summary>
    public int LanesGroupBytes { get; init; } = 16 << 20;

    /// <summary>The one-float-at-a-time reference of the lane layout changes instead of the 8×8 transposes.</summary>
    public bool LanesScalarTransposes { get; init; }

    /// <summary>Winograd on the lane tensors off (the direct lane kernel instead).</summary>
    public bool WinogradDisabled { get; init; }

    /// <summary>Winograd through the GEMM (many channels, NCHW) off.</summary>
    public bool WinogradNchwDisabled { get; init; }

    /// <summary>Floats of V and M of one chunk of NCHW Winograd tile rows (ConvWinogradNchw.ChunkRows).</summary>
    public int WinogradNchwChunkFloats { get; init; } = 1 << 22;

    /// <summary>Fewest input and output channels for NCHW Winograd.</summary>
    public int WinogradNchwMinChannels { get; init; } = 128;

    /// <summary>Floats of one im2col chunk's column matrix (8 MB).</summary>
    public int ConvChunkFloats { get; init; } = 1 << 21;

    /// <summary>Largest whole-batch column matrix (floats) the forward keeps for backward instead of recomputing it.</summary>
    public int ConvSaveColFloats { get; init; } = 1 << 22;

    /// <summary>Every ResBlock forward through the single ops instead of the fused lane path.</summary>
    public bool ResBlockFusionDisabled { get; init; }

    // ---- GEMM and attention ----

    /// <summary>Threads that run out of GEMM chunks do not help the others.</summary>
    public bool GemmHelpDisabled { get; init; }

    /// <summary>The owner of the first column chunk sleeps this long before each M block it takes, so others help it.</summary>
    public int GemmSlowFirstChunkMs { get; init; }

    /// <summary>A shared A's row blocks packed last to first.</summary>
    public bool GemmPackBackwards { get; init; }

    /// <summary>Gemm.Linear's kernel: Auto chooses; K12x32 or K6x16 forces the weight-rows path with that kernel; any
    /// other kind forces Sgemm followed by the bias.</summary>
    internal Gemm.KernelKind LinearKernel { get; init; }

    /// <summary>Linear weights are never packed for inference (Gemm.CanPrepackLinear is false): models keep W's own
    /// layout and take Gemm.Linear, as on machines without AVX-512.</summary>
    public bool PrepackedLinearDisabled { get; init; }

    /// <summary>Floats of scores one block of attention query rows may take (AttentionFused.BlockRows).</summary>
    public int AttentionBlockFloats { get; init; } = 1 << 19;
}

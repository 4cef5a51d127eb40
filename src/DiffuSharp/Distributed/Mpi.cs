// Open MPI through a small P/Invoke layer: MPI_Init, rank and size of MPI_COMM_WORLD, Allreduce (in place, sum) on
// float and double buffers, Bcast, Allgather, Barrier, Abort, Finalize (MPI 3.1 standard,
// https://www.mpi-forum.org/docs/mpi-3.1/mpi31-report.pdf), as improved-diffusion's dist_util/mpi4py use them.
// Open MPI's ABI (mpi.h of 4.x and 5.x): a handle such as MPI_COMM_WORLD, MPI_FLOAT or MPI_SUM is the address of an
// exported global (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum), MPI_IN_PLACE is (void*)1 and
// MPI_STATUS_IGNORE is null. libmpi.so.40 is dlopen'ed with RTLD_GLOBAL first, because Open MPI's plugins
// (mca_*.so) resolve their symbols against it; .NET's own NativeLibrary.Load opens libraries RTLD_LOCAL.
// Nothing is loaded unless the process was started by mpirun (OMPI_COMM_WORLD_SIZE or PMIX_RANK in the
// environment): without it, InitFromEnvironment returns null and training runs as a single process.
// Deviation from plain MPI: Barrier waits by polling MPI_Ibarrier with 1 ms sleeps instead of Open MPI's busy
// polling (ranks waiting for rank 0's checkpoint leave the cores to it), and every collective is watched by a
// timer that ends the process with a message once it has waited longer than CollectiveTimeout (a last resort:
// mpirun itself ends the job within seconds when a rank dies).
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace DiffuSharp.Distributed;

/// <summary>MPI_COMM_WORLD of an Open MPI job: this process's <see cref="Rank"/> among <see cref="Size"/>.
/// Only one exists per process; call collectives from one thread.</summary>
public sealed unsafe class Mpi
{
    const string LibraryName = "libmpi.so.40";
    const int RtldNow = 2, RtldGlobal = 0x100;
    static Mpi? _current;

    readonly nint _comm, _float, _double, _byte, _long, _sum;
    readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduce;
    readonly delegate* unmanaged<void*, int, nint, int, nint, int> _bcast;
    readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> _allgather;
    readonly delegate* unmanaged<nint, nint*, int> _ibarrier;
    readonly delegate* unmanaged<nint*, int*, void*, int> _test;
    readonly delegate* unmanaged<nint, int, int> _abort;
    readonly delegate* unmanaged<int> _finalize;
    readonly Thread _watchdog;
    string? _inFlight;                                 // the collective now waiting, or null
    long _inFlightSince;                               // Stopwatch timestamp of its start
    bool _finalized;

    /// <summary>This process's rank in MPI_COMM_WORLD, 0..Size−1.</summary>
    public int Rank { get; }

    /// <summary>Number of processes in the job.</summary>
    public int Size { get; }

    /// <summary>True on rank 0, the rank that writes checkpoints, logs and samples.</summary>
    public bool IsRoot => Rank == 0;

    /// <summary>How long one collective may wait for the other ranks before this process ends the job.</summary>
    public TimeSpan CollectiveTimeout { get; }

    /// <summary>True when mpirun (or a PMIx/PMI launcher such as srun) started this process.</summary>
    public static bool LaunchedByMpirun =>
        Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null || Environment.GetEnvironmentVariable("PMIX_RANK") is not null
        || Environment.GetEnvironmentVariable("PMI_RANK") is not null;

    // The job size the launcher announced, where it says (Open MPI's mpirun, PMI launchers).
    static int? LauncherSize() =>
        int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") ?? Environment.GetEnvironmentVariable("PMI_SIZE"), out int n) ? n : null;

    /// <summary>
    /// MPI_Init when this process was started by mpirun, else null (a single process, MPI never loaded). Throws
    /// InvalidOperationException when launched by mpirun but Open MPI's library cannot be loaded.
    /// </summary>
    public static Mpi? InitFromEnvironment(TimeSpan collectiveTimeout)
    {
        if (!LaunchedByMpirun) return null;
        if (_current is not null) return _current._finalized ? throw new InvalidOperationException("MPI was finalized in this process; it cannot start again") : _current;
        if (!(collectiveTimeout > TimeSpan.Zero)) throw new ArgumentOutOfRangeException(nameof(collectiveTimeout), $"the collective timeout must be positive, got {collectiveTimeout}");
        return _current = new Mpi(collectiveTimeout);
    }

    Mpi(TimeSpan collectiveTimeout)
    {
        CollectiveTimeout = collectiveTimeout;
        // 1. Load libmpi globally so that its plugins see its symbols, then look everything up through .NET.
        if (Dl.Open(LibraryName, RtldNow | RtldGlobal) == 0 || !NativeLibrary.TryLoad(LibraryName, out nint lib))
            throw new InvalidOperationException($"started by mpirun, but Open MPI's {LibraryName} could not be loaded ({Dl.LastError()}); install openmpi-bin and libopenmpi-dev");
        nint Sym(string name) => NativeLibrary.TryGetExport(lib, name, out nint p) ? p
            : throw new InvalidOperationException($"{LibraryName} does not export {name}: not Open MPI 4 or 5?");

        // 2. Handles are addresses of Open MPI's predefined objects.
        (_comm, _float, _double, _byte, _long, _sum) = (Sym("ompi_mpi_comm_world"), Sym("ompi_mpi_float"), Sym("ompi_mpi_double"),
            Sym("ompi_mpi_byte"), Sym("ompi_mpi_long"), Sym("ompi_mpi_op_sum"));
        _allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Sym("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Sym("MPI_Bcast");
        _allgather = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)Sym("MPI_Allgather");
        _ibarrier = (delegate* unmanaged<nint, nint*, int>)Sym("MPI_Ibarrier");
        _test = (delegate* unmanaged<nint*, int*, void*, int>)Sym("MPI_Test");
        _abort = (delegate* unmanaged<nint, int, int>)Sym("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Sym("MPI_Finalize");

        // 3. MPI_Init (unless someone in this process already did), rank and size.
        var initialized = (delegate* unmanaged<int*, int>)Sym("MPI_Initialized");
        int flag = 0;
        Check(initialized(&flag), "MPI_Initialized");
        if (flag == 0) Check(((delegate* unmanaged<int*, byte***, int>)Sym("MPI_Init"))(null, null), "MPI_Init");
        int rank, size;
        Check(((delegate* unmanaged<nint, int*, int>)Sym("MPI_Comm_rank"))(_comm, &rank), "MPI_Comm_rank");
        Check(((delegate* unmanaged<nint, int*, int>)Sym("MPI_Comm_size"))(_comm, &size), "MPI_Comm_size");
        (Rank, Size) = (rank, size);
        // Another MPI's launcher (MPICH's mpiexec) starting Open MPI processes gives N jobs of one rank each, which
        // would all write the same output folder: refuse.
        if (LauncherSize() is int expected && expected != size)
            throw new InvalidOperationException($"the launcher started {expected} processes but Open MPI sees a job of {size}: start with Open MPI's mpirun");

        _watchdog = new Thread(Watch) { IsBackground = true, Name = "mpi collective watchdog" };
        _watchdog.Start();
    }

    /// <summary>buffer ← Σ over ranks of buffer, element-wise (MPI_Allreduce with MPI_IN_PLACE, MPI_SUM).</summary>
    public void AllreduceSum(Span<float> buffer)
    {
        Enter("MPI_Allreduce");
        int rc;
        fixed (float* p = buffer) rc = _allreduce((void*)1, p, buffer.Length, _float, _sum, _comm);
        Done(rc, "MPI_Allreduce");
    }

    /// <summary>buffer ← Σ over ranks of buffer, element-wise, in double.</summary>
    public void AllreduceSum(Span<double> buffer)
    {
        Enter("MPI_Allreduce");
        int rc;
        fixed (double* p = buffer) rc = _allreduce((void*)1, p, buffer.Length, _double, _sum, _comm);
        Done(rc, "MPI_Allreduce");
    }

    /// <summary>Every rank's buffer ← root's buffer (same length on every rank).</summary>
    public void Bcast(Span<float> buffer, int root = 0)
    {
        Enter("MPI_Bcast");
        int rc;
        fixed (float* p = buffer) rc = _bcast(p, buffer.Length, _float, root, _comm);
        Done(rc, "MPI_Bcast");
    }

    /// <summary>Every rank's buffer ← root's buffer (same length on every rank).</summary>
    public void Bcast(Span<byte> buffer, int root = 0)
    {
        Enter("MPI_Bcast");
        int rc;
        fixed (byte* p = buffer) rc = _bcast(p, buffer.Length, _byte, root, _comm);
        Done(rc, "MPI_Bcast");
    }

    /// <summary>Every rank's buffer ← root's buffer (same length on every rank).</summary>
    public void Bcast(Span<long> buffer, int root = 0)
    {
        Enter("MPI_Bcast");
        int rc;
        fixed (long* p = buffer) rc = _bcast(p, buffer.Length, _long, root, _comm);
        Done(rc, "MPI_Bcast");
    }

    /// <summary>received[r·n .. (r+1)·n) ← rank r's send (n = send.Length, the same on every rank).</summary>
    public void Allgather(ReadOnlySpan<double> send, Span<double> received)
    {
        if (received.Length != send.Length * Size) throw new ArgumentException($"Allgather: the receive buffer holds {received.Length} values, expected {send.Length} × {Size} ranks");
        Enter("MPI_Allgather");
        int rc;
        fixed (double* s = send) fixed (double* r = received) rc = _allgather(s, send.Length, _double, r, send.Length, _double, _comm);
        Done(rc, "MPI_Allgather");
    }

    /// <summary>received[r·n .. (r+1)·n) ← rank r's send (n = send.Length, the same on every rank).</summary>
    public void Allgather(ReadOnlySpan<long> send, Span<long> received)
    {
        if (received.Length != send.Length * Size) throw new ArgumentException($"Allgather: the receive buffer holds {received.Length} values, expected {send.Length} × {Size} ranks");
        Enter("MPI_Allgather");
        int rc;
        fixed (long* s = send) fixed (long* r = received) rc = _allgather(s, send.Length, _long, r, send.Length, _long, _comm);
        Done(rc, "MPI_Allgather");
    }

    /// <summary>Returns once every rank has called it. Waits by polling every millisecond, not by spinning.</summary>
    public void Barrier()
    {
        nint request;
        Enter("MPI_Barrier");
        Check(_ibarrier(_comm, &request), "MPI_Ibarrier");
        int done = 0;
        for (int polls = 0; ; polls++)
        {
            Check(_test(&request, &done, null), "MPI_Test");
            if (done != 0) break;
            if (polls < 100) Thread.SpinWait(50);
            else Thread.Sleep(1);
        }
        Exit();
    }

    /// <summary>Writes <paramref name="message"/> (one line, unless null) to stderr, then ends every rank of the job (MPI_Abort).</summary>
    [DoesNotReturn]
    public void Abort(string? message, int errorCode = 1)
    {
        Console.Out.Flush();
        if (message is not null) Console.Error.WriteLine(message);
        Console.Error.Flush();
        _abort(_comm, errorCode);
        Dl.Exit(errorCode);                            // MPI_Abort does not return; should it, leave anyway
    }

    /// <summary>MPI_Finalize: call once, on every rank, after the last collective.</summary>
    public void Finish()
    {
        if (_finalized) return;
        Enter("MPI_Finalize");
        Check(_finalize(), "MPI_Finalize");
        Exit();
        _finalized = true;
    }

    void Done(int rc, string name)
    {
        Exit();
        Check(rc, name);
    }

    void Enter(string name)
    {
        if (_finalized) throw new InvalidOperationException($"{name} after MPI_Finalize");
        Volatile.Write(ref _inFlightSince, Stopwatch.GetTimestamp());
        Volatile.Write(ref _inFlight, name);
    }

    void Exit() => Volatile.Write(ref _inFlight, null);

    void Check(int rc, string name)
    {
        if (rc != 0) throw new InvalidOperationException($"rank {Rank}: {name} failed with MPI error code {rc}");
    }

    // Ends this process when one collective has waited longer than CollectiveTimeout: mpirun then ends the others.
    // The watchdog calls no MPI function (the library was initialised for one calling thread).
    void Watch()
    {
        var tick = TimeSpan.FromMilliseconds(Math.Clamp(CollectiveTimeout.TotalMilliseconds / 10, 10, 1000));
        while (true)
        {
            Thread.Sleep(tick);
            string? name = Volatile.Read(ref _inFlight);
            if (name is null) continue;
            var waited = Stopwatch.GetElapsedTime(Volatile.Read(ref _inFlightSince));
            if (waited < CollectiveTimeout || !ReferenceEquals(name, Volatile.Read(ref _inFlight))) continue;
            Console.Error.WriteLine($"error: rank {Rank} of {Size}: {name} has waited {waited.TotalSeconds:F0} s for the other ranks " +
                $"(a rank is gone or stuck; the limit is --mpi-timeout {CollectiveTimeout.TotalSeconds:F0}); ending the job");
            Console.Error.Flush();
            Dl.Exit(3);
        }
    }

    static class Dl
    {
        [DllImport("libc.so.6", EntryPoint = "dlopen")] static extern nint DlOpen(string file, int mode);
        [DllImport("libc.so.6", EntryPoint = "dlerror")] static extern nint DlError();
        [DllImport("libc.so.6", EntryPoint = "_exit")] static extern void UnderscoreExit(int code);

        public static nint Open(string file, int mode)
        {
            try { return DlOpen(file, mode); }
            catch (DllNotFoundException) { return 0; }
            catch (EntryPointNotFoundException) { return 0; }
        }

        public static string LastError()
        {
            try { return Marshal.PtrToStringUTF8(DlError()) ?? "no detail"; }
            catch (DllNotFoundException) { return "libc.so.6 not found"; }
        }

        /// <summary>Leaves the process at once, without finalizers or MPI_Finalize (mpirun then ends the job).</summary>
        [DoesNotReturn]
        public static void Exit(int code)
        {
            try { UnderscoreExit(code); }
            catch (DllNotFoundException) { }
            Environment.Exit(code);
        }
    }
}

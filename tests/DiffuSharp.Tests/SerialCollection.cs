using Xunit;

namespace DiffuSharp.Tests;

/// <summary>Tests that run with no other test beside them: runs compared bit for bit with runs made moments earlier
/// (other tests change process-wide settings such as Parallelism.MaxThreads while they run), and child processes
/// whose timing a loaded test host upsets (a SIGINT that must land mid-run).</summary>
[CollectionDefinition(nameof(SerialCollection), DisableParallelization = true)]
public sealed class SerialCollection;

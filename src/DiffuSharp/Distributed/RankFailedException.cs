// A failure that every rank of an MPI job learns of at the same collective (a non-finite loss or gradient on one
// rank): each rank raises it, rank 0 reports it, and the job ends.
namespace DiffuSharp.Distributed;

/// <summary>Rank <see cref="Rank"/> failed; raised on every rank of the job at once.</summary>
public sealed class RankFailedException(int rank, string message) : Exception(message)
{
    /// <summary>The rank the failure came from.</summary>
    public int Rank { get; } = rank;
}

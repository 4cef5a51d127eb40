// The results the page's gallery shows: the newest images of every job, in memory, at most GalleryCapacity of them
// (the oldest dropped), so a long-running server's memory stays bounded.
namespace DiffuSharp.Server;

public sealed class Gallery(int capacity)
{
    readonly LinkedList<JobImage> _items = new();
    readonly Dictionary<string, LinkedListNode<JobImage>> _byId = new(StringComparer.Ordinal);
    readonly object _gate = new();

    public void Add(IEnumerable<JobImage> images)
    {
        lock (_gate)
            foreach (var image in images.Reverse())               // the job's first image ends up first
            {
                _byId[image.Id] = _items.AddFirst(image);
                while (_items.Count > capacity)
                {
                    _byId.Remove(_items.Last!.Value.Id);
                    _items.RemoveLast();
                }
            }
    }

    public JobImage? Find(string id) { lock (_gate) return _byId.TryGetValue(id, out var n) ? n.Value : null; }

    /// <summary>Newest first.</summary>
    public IReadOnlyList<JobImage> Items { get { lock (_gate) return [.. _items]; } }
}

// Reverse-mode autograd (micrograd's idea at tensor granularity): every op that has an input requiring grad
// records a Node holding its inputs and a backward closure. Backward() sorts the graph topologically, runs the
// closures from the root down, accumulates into Grad, then releases every node so memory does not grow. Inside a
// TensorScope a non-leaf's gradient buffer goes back to the pool as soon as its node's backward has consumed it, so
// only the gradients on the current frontier of the graph are alive at once.
namespace DiffuSharp.Autograd;

internal sealed class Node(string name, Tensor[] inputs, Action<Tensor> backward)
{
    public readonly string Name = name;
    public readonly Tensor[] Inputs = inputs;
    /// <summary>Receives dy (contiguous, the output's shape) and adds each input's share into its GradData().</summary>
    public readonly Action<Tensor> Backward = backward;
}

/// <summary>Whether ops record the graph. Scoped per thread: <c>using (Tensor.NoGrad()) { … }</c>.</summary>
public static class GradMode
{
    [ThreadStatic] static int _noGradDepth;

    /// <summary>True on this thread unless a <see cref="Tensor.NoGrad"/> scope is open; ops record the graph only when
    /// it is true.</summary>
    public static bool IsEnabled => _noGradDepth == 0;

    /// <summary>A no-grad scope from <see cref="Tensor.NoGrad"/>; scopes nest, and grad recording resumes when the
    /// outermost is disposed.</summary>
    public readonly struct Scope : IDisposable
    {
        internal Scope(int _) => _noGradDepth++;
        /// <summary>Ends this no-grad scope on the thread that opened it.</summary>
        public void Dispose() => _noGradDepth--;
    }

    internal static Scope Enter() => new(0);
}

internal static class Graph
{
    /// <summary>Attaches a node to <paramref name="y"/> when grad is on and any input requires grad.</summary>
    public static Tensor Record(string name, Tensor y, Tensor[] inputs, Action<Tensor> backward)
    {
        if (OpProfiler.IsRunning) OpProfiler.Forward(name);
        if (MemoryTrace.IsRunning) MemoryTrace.Sample(name, y);
        if (!GradMode.IsEnabled) return y;
        bool any = false;
        foreach (var t in inputs) any |= t.RequiresGrad;
        if (!any) return y;
        y.RequiresGrad = true;
        y.GradFn = new Node(name, inputs, backward);
        return y;
    }

    public static Tensor Record(string name, Tensor y, Tensor a, Action<Tensor> backward) => Record(name, y, [a], backward);
    public static Tensor Record(string name, Tensor y, Tensor a, Tensor b, Action<Tensor> backward) => Record(name, y, [a, b], backward);

    public static void Backward(Tensor root, Tensor? gradient)
    {
        if (!root.RequiresGrad)
            throw new InvalidOperationException("Backward: this tensor does not require grad (no input had RequireGrad(), or it was computed under NoGrad, or its graph was already released by an earlier Backward)");
        if (gradient is null)
        {
            if (root.Count != 1) throw new ArgumentException($"Backward without a gradient needs a scalar, got shape {ShapeUtil.Format(root.ShapeSpan)}");
            root.GradData()[0] += 1f;
        }
        else
        {
            if (!ShapeUtil.Equal(gradient.ShapeSpan, root.ShapeSpan))
                throw new ArgumentException($"Backward: gradient shape {ShapeUtil.Format(gradient.ShapeSpan)} does not match tensor shape {ShapeUtil.Format(root.ShapeSpan)}");
            Kernels.Binary.AddInPlace(root.GradData(), gradient.Contiguous().Data);
        }

        var order = TopologicalOrder(root);
        for (int i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            var node = t.GradFn!;
            var dy = t.Grad;
            if (dy is not null)
            {
                if (OpProfiler.IsRunning)
                {
                    long start = System.Diagnostics.Stopwatch.GetTimestamp();
                    node.Backward(dy);
                    OpProfiler.Backward(node.Name, start);
                }
                else node.Backward(dy);
            }
            // Release: the node's closure holds its inputs and saved activations. The tensor keeps its values
            // but no longer belongs to a graph.
            t.GradFn = null;
            t.Grad = null;
            t.RequiresGrad = false;
            // dy is consumed. A pooled gradient buffer that no other tensor holds as its Grad (nothing aliases it)
            // goes back now; a view of it kept anywhere would throw rather than see the next gradient's values.
            if (dy?.Lease is { IsGradBuffer: true, GradRefs: 0 } lease) lease.Release(StorageLease.ReleasedBy.Backward);
        }
    }

    /// <summary>Tensors with a GradFn reachable from root, inputs before outputs (iterative DFS, no recursion limit).</summary>
    static List<Tensor> TopologicalOrder(Tensor root)
    {
        var order = new List<Tensor>();
        if (root.GradFn is null) return order;
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor T, int Next)>();
        stack.Push((root, 0));
        visited.Add(root);
        while (stack.Count > 0)
        {
            var (t, next) = stack.Pop();
            var inputs = t.GradFn!.Inputs;
            if (next < inputs.Length)
            {
                stack.Push((t, next + 1));
                var child = inputs[next];
                if (child.GradFn is not null && visited.Add(child)) stack.Push((child, 0));
            }
            else order.Add(t);
        }
        return order;
    }
}

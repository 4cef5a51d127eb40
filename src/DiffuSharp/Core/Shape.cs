// Shape arithmetic shared by the tensor and its ops: element counts, row-major strides, broadcasting, axis
// normalisation, and the text used in every shape error message.
namespace DiffuSharp;

/// <summary>Shape arithmetic shared by the tensor and its ops: element counts, row-major strides, broadcasting, axis
/// normalisation and the "(2, 3, 4)" text of shape errors.</summary>
public static class ShapeUtil
{
    /// <summary>The number of elements of <paramref name="shape"/> (1 for a scalar); throws
    /// <see cref="ArgumentException"/> for a negative dimension or more than int.MaxValue elements.</summary>
    public static int Count(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Negative dimension in shape {Format(shape)}");
            n *= d;
            if (n > int.MaxValue) throw new ArgumentException($"Shape {Format(shape)} has more than {int.MaxValue} elements");
        }
        return (int)n;
    }

    /// <summary>Row-major (C-order) strides in elements for <paramref name="shape"/>: the last axis has stride
    /// 1.</summary>
    public static int[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var strides = new int[shape.Length];
        int s = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= Math.Max(shape[i], 1);
        }
        return strides;
    }

    /// <summary>The shape as "(d0, d1, …)", the form every shape error message uses.</summary>
    public static string Format(ReadOnlySpan<int> shape) => "(" + string.Join(", ", shape.ToArray()) + ")";

    /// <summary>True when both shapes have the same rank and the same sizes.</summary>
    public static bool Equal(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);

    /// <summary>numpy broadcasting: align from the right; each pair of sizes must match or one must be 1.</summary>
    public static int[] Broadcast(ReadOnlySpan<int> a, ReadOnlySpan<int> b, string op)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {Format(a)} and {Format(b)} cannot be broadcast together (dimension {i}: {da} vs {db})");
            r[i] = da == 1 ? db : da;
        }
        return r;
    }

    /// <summary>Maps a possibly negative axis to [0, rank).</summary>
    public static int Axis(int axis, int rank, string op)
    {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new ArgumentException($"{op}: axis {axis} is out of range for a tensor of rank {rank}");
        return a;
    }

    /// <summary>Resolves one -1 in a reshape target against the element count.</summary>
    public static int[] ResolveReshape(ReadOnlySpan<int> from, int[] to)
    {
        int count = Count(from), known = 1, infer = -1;
        for (int i = 0; i < to.Length; i++)
        {
            if (to[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"Reshape {Format(from)} -> {Format(to)}: only one dimension may be -1");
                infer = i;
            }
            else if (to[i] < 0) throw new ArgumentException($"Reshape {Format(from)} -> {Format(to)}: negative dimension");
            else known *= to[i];
        }
        var r = (int[])to.Clone();
        if (infer >= 0)
        {
            if (known == 0 || count % known != 0)
                throw new ArgumentException($"Reshape {Format(from)} -> {Format(to)}: {count} elements cannot fill the shape");
            r[infer] = count / known;
        }
        if (Count(r) != count)
            throw new ArgumentException($"Reshape {Format(from)} -> {Format(to)}: {count} elements do not fit {Count(r)}");
        return r;
    }
}

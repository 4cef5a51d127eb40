// Creating tensors: zeros, ones, full, arange, from arrays, and random normal/uniform from an explicit Rng.
namespace DiffuSharp;

public sealed partial class Tensor
{
    /// <summary>A new zero-filled float32 tensor of <paramref name="shape"/> (pooled storage inside a
    /// <see cref="TensorScope"/>).</summary>
    public static Tensor Zeros(params int[] shape) => new((int[])shape.Clone());

    /// <summary>A new tensor of <paramref name="shape"/> filled with 1.</summary>
    public static Tensor Ones(params int[] shape) => Full(shape, 1f);

    /// <summary>A new tensor of <paramref name="shape"/> with every element set to <paramref name="value"/>.</summary>
    public static Tensor Full(int[] shape, float value)
    {
        var t = Uninitialized((int[])shape.Clone());
        t.Data.Fill(value);
        return t;
    }

    /// <summary>start, start + step, … (exclusive of end), as PyTorch's arange.</summary>
    public static Tensor Arange(float start, float end, float step = 1f)
    {
        if (step == 0 || (end - start) / step < 0) throw new ArgumentException($"Arange({start}, {end}, {step}) is empty or infinite");
        int n = (int)Math.Ceiling((end - start) / (double)step);
        var t = Uninitialized([n]);
        var d = t.Data;
        for (int i = 0; i < n; i++) d[i] = (float)(start + (double)i * step);
        return t;
    }

    /// <summary>A tensor over a copy of data with the given shape.</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        return FromSpan(data, shape);
    }

    /// <summary>A tensor over a copy of data with the given shape (pooled storage inside a <see cref="TensorScope"/>).</summary>
    public static Tensor FromSpan(ReadOnlySpan<float> data, params int[] shape)
    {
        if (shape.Length == 0) shape = [data.Length];
        int n = ShapeUtil.Count(shape);
        if (n != data.Length) throw new ArgumentException($"FromArray: {data.Length} values do not fill shape {ShapeUtil.Format(shape)} ({n} elements)");
        var t = Uninitialized((int[])shape.Clone());
        data.CopyTo(t.Data);
        return t;
    }

    /// <summary>A tensor that takes ownership of data (no copy).</summary>
    public static Tensor Wrap(float[] data, params int[] shape)
    {
        int n = ShapeUtil.Count(shape);
        if (n != data.Length) throw new ArgumentException($"Wrap: {data.Length} values do not fill shape {ShapeUtil.Format(shape)} ({n} elements)");
        return OverArray(data, 0, (int[])shape.Clone(), ShapeUtil.ContiguousStrides(shape));
    }

    /// <summary>A rank-0 tensor holding <paramref name="value"/>; it broadcasts against any shape.</summary>
    public static Tensor Scalar(float value) => OverArray([value], 0, [], []);

    /// <summary>Independent normal draws N(<paramref name="mean"/>, <paramref name="std"/>²) of
    /// <paramref name="shape"/>, taken from <paramref name="rng"/> in row-major order (torch.randn with an explicit
    /// generator).</summary>
    public static Tensor RandN(int[] shape, Rng rng, float mean = 0f, float std = 1f)
    {
        var t = Uninitialized((int[])shape.Clone());
        rng.FillNormal(t.Data, mean, std);
        return t;
    }

    /// <summary>Independent uniform draws in [<paramref name="low"/>, <paramref name="high"/>) of
    /// <paramref name="shape"/>, taken from <paramref name="rng"/> in row-major order (torch.rand).</summary>
    public static Tensor Rand(int[] shape, Rng rng, float low = 0f, float high = 1f)
    {
        var t = Uninitialized((int[])shape.Clone());
        rng.FillUniform(t.Data, low, high);
        return t;
    }

    /// <summary>A zero-filled tensor of <paramref name="t"/>'s shape (torch.zeros_like); no autograd history.</summary>
    public static Tensor ZerosLike(Tensor t) => new(t.Shape);
    /// <summary>Standard normal draws of <paramref name="t"/>'s shape from <paramref name="rng"/>
    /// (torch.randn_like).</summary>
    public static Tensor RandNLike(Tensor t, Rng rng) => RandN(t.Shape, rng);

    /// <summary>A contiguous copy with no autograd history (pooled storage inside a <see cref="TensorScope"/>).</summary>
    public Tensor Clone()
    {
        var t = Uninitialized(Shape);
        Kernels.Strided.Gather(Storage, Offset, _shape, _strides, t.Data);
        return t;
    }
}

// Every op that writes its output into uninitialised (recycled) storage, forward and backward, at sizes that are
// pooled: the same bits in a scope (twice, the second time on NaN-poisoned recycled arrays) as with GC arrays.
using Xunit;

namespace DiffuSharp.Tests.Memory;

public class PooledOpsTests
{
    public static TheoryData<string> Ops => new()
    {
        "add_broadcast", "sub", "mul_broadcast", "div", "affine", "exp_log_sqrt", "tanh_sigmoid_silu_gelu", "pow", "clamp", "where",
        "sum_axis", "max", "softmax", "log_softmax_strided", "contiguous_permute", "concat", "index_select", "matmul_batched",
        "linear", "conv3x3", "conv1x1", "conv_stride2", "conv1d", "group_norm_silu", "layer_norm", "dropout", "attention",
        "avg_pool", "upsample", "clone_fromspan_randn",
    };

    static Tensor Forward(string op, Tensor[] x, Rng rng) => op switch
    {
        "add_broadcast" => x[0] + x[1].Reshape(1, 8, 1, 1) + x[2],
        "sub" => x[0] - x[2],
        "mul_broadcast" => x[0] * x[1].Reshape(1, 8, 1, 1),
        "div" => x[0] / (x[2].Square() + 1.0),
        "affine" => 2.5 * x[0] - 1.0,
        "exp_log_sqrt" => ((x[0] * 0.1).Exp() + 1.0).Log().Sqrt(),
        "tanh_sigmoid_silu_gelu" => x[0].Tanh() + x[2].Sigmoid() + x[0].Silu() + x[2].Gelu(),
        "pow" => (x[0].Square() + 1.0).Pow(1.5),
        "clamp" => x[0].Clamp(-0.5, 0.7),
        "where" => Tensor.Where(x[2] * 0.0 + 1.0 - (x[3] * 0.0 + 1.0), x[0], x[2]),
        "sum_axis" => x[0].Sum([0], keepDim: true) + x[0].Sum(1).Reshape(2, 1, 24, 24),
        "max" => x[0].Max(1),
        "softmax" => x[0].Softmax(),
        "log_softmax_strided" => x[0].LogSoftmax(1),
        "contiguous_permute" => x[0].Permute(0, 2, 3, 1).Contiguous(),
        "concat" => Tensor.Concat([x[0], x[2]], 1),
        "index_select" => x[0].IndexSelect(1, [3, 0, 0, 7, 2]),
        "matmul_batched" => x[0].Reshape(16, 24, 24).MatMul(x[2].Reshape(16, 24, 24).Transpose(1, 2)),
        "linear" => Tensor.Linear(x[0].Reshape(-1, 24), x[4], x[5]),
        "conv3x3" => Tensor.Conv2d(x[0], x[6], x[1], stride: 1, padding: 1),
        "conv1x1" => Tensor.Conv2d(x[0], x[7], x[1]),
        "conv_stride2" => Tensor.Conv2d(x[0], x[6], x[1], stride: 2, padding: 1),
        "conv1d" => Tensor.Conv1d(x[0].Reshape(2, 8, 576), x[7].Reshape(8, 8, 1), x[1]),
        "group_norm_silu" => Tensor.GroupNormSilu(x[0], 4, x[1], x[8]),
        "layer_norm" => Tensor.LayerNorm(x[0], [24], x[5], x[9]),
        "dropout" => x[0].Dropout(0.3f, rng),
        "attention" => Tensor.Attention(x[0].Reshape(16, 24, 24), x[2].Reshape(16, 24, 24).Transpose(1, 2), x[3].Reshape(16, 24, 24), 0.2f),
        "avg_pool" => x[0].AvgPool2x2(),
        "upsample" => x[0].UpsampleNearest2x(),
        "clone_fromspan_randn" => x[0] * Tensor.FromSpan(x[2].Clone().Detach().Data, x[2].Shape) + Tensor.RandN(x[0].Shape, rng),
        _ => throw new ArgumentException(op),
    };

    static List<float[]> Run(string op)
    {
        var rng = new Rng(17);
        int[][] shapes = [[2, 8, 24, 24], [8], [2, 8, 24, 24], [2, 8, 24, 24], [24, 24], [24], [8, 8, 3, 3], [8, 8, 1, 1], [8], [24]];
        var xs = shapes.Select(s => Tensor.RandN(s, rng).RequireGrad()).ToArray();
        var y = Forward(op, xs, rng);
        var w = Tensor.RandN(y.Shape, rng);
        (y * w).Sum().Backward();
        var r = new List<float[]> { y.ToArray() };
        r.AddRange(xs.Where(x => x.Grad is not null).Select(x => x.Grad!.ToArray()));
        return r;
    }

    [Theory, MemberData(nameof(Ops))]
    public void Op_gives_the_same_bits_on_recycled_storage(string op)
    {
        List<float[]> reference;
        using (TensorScope.Unpooled()) reference = Run(op);
        for (int run = 0; run < 2; run++)
        {
            List<float[]> pooled;
            using (var scope = TensorScope.Begin())
            {
                pooled = Run(op);
                Assert.True(scope.PeakBytes > 0, $"{op}: nothing was pooled");
            }
            Assert.Equal(reference.Count, pooled.Count);
            for (int k = 0; k < reference.Count; k++)
                for (int i = 0; i < reference[k].Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(reference[k][i]) == BitConverter.SingleToInt32Bits(pooled[k][i]),
                        $"{op} run {run}, {(k == 0 ? "output" : $"gradient {k}")}[{i}]: {reference[k][i]:G9} vs {pooled[k][i]:G9}");
        }
    }
}

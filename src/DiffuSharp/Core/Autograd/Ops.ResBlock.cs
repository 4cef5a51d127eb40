// The forward of an improved-diffusion ResBlock (without scale-shift norm, dropout off) when no gradient is recorded,
// as in sampling:
//     out = residual + conv2(silu(gn2(conv1(silu(gn1(x))) + emb)))
// with both 3×3 convolutions on lane tensors (Kernels/ConvLanes.cs) back to back. Composed of the single ops, each
// convolution takes the NCHW input into the lane layout and its output back, and the group norms, the embedding add
// and the SiLUs each pass over NCHW tensors. Here group norm 1 + SiLU is applied on the way into the lane layout (same
// bits as the single ops), the bias and embedding are added and group norm 2 + SiLU applied on the lane tensor
// (Kernels/LaneNorm.cs: its statistics summed in another order, so within a few float ulps of the single ops), and
// only the block's output returns to NCHW, with the residual added as it is written.
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>Tests turn this on (KernelSwitches) to run every ResBlock through the single ops.</summary>
    internal static bool ResBlockFusionDisabled => KernelSwitches.Current.ResBlockFusionDisabled;

    /// <summary>Whether <see cref="ResBlockNoGrad"/> takes input x (B, C, H, W) to cout channels: no gradient recorded
    /// and both convolutions preferring the lane layout.</summary>
    public static bool ResBlockFuses(Tensor x, int cout) =>
        x.Rank == 4 && ResBlockFuses(x.ShapeSpan[0], x.ShapeSpan[1], x.ShapeSpan[2], x.ShapeSpan[3], cout);

    /// <summary>The same for an input of batch × c × h × w (c may be the channels of two tensors side by side).</summary>
    public static bool ResBlockFuses(int batch, int c, int h, int w, int cout) =>
        !ResBlockFusionDisabled && !GradMode.IsEnabled
        && ConvLanes.PreferForward(new ConvGeometry(c, h, w, 3, 3, 1, 1), cout, batch)
        && ConvLanes.PreferForward(new ConvGeometry(cout, h, w, 3, 3, 1, 1), cout, batch);

    /// <summary>y = W·cat(a, b) + bias for a 1×1 convolution without gradients, W (Cout, Ca + Cb, 1, 1), a (B, Ca, H, W),
    /// b (B, Cb, H, W), the concatenation not made: per image W[:, :Ca]·a, then W[:, Ca:]·b added. Within float rounding
    /// of the convolution of the concatenation (the sum over input channels is split in two).</summary>
    public static Tensor PointwiseConvPair(Tensor a, Tensor b, Tensor weight, Tensor? bias)
    {
        if (GradMode.IsEnabled) throw new InvalidOperationException("PointwiseConvPair runs without gradients only");
        int batch = a.Dim(0), ca = a.Dim(1), cb = b.Dim(1), h = a.Dim(2), w = a.Dim(3), hw = h * w, cout = weight.Dim(0);
        if (a.Rank != 4 || b.Rank != 4 || b.Dim(0) != batch || b.Dim(2) != h || b.Dim(3) != w || !weight.ShapeSpan.SequenceEqual([cout, ca + cb, 1, 1]))
            throw new ArgumentException($"PointwiseConvPair: inputs {ShapeUtil.Format(a.ShapeSpan)} and {ShapeUtil.Format(b.ShapeSpan)} do not fit weight {ShapeUtil.Format(weight.ShapeSpan)}");
        CheckBias("PointwiseConvPair", bias, cout);
        a = a.Contiguous(); b = b.Contiguous(); weight = weight.Contiguous();
        var y = Tensor.Uninitialized([batch, cout, h, w]);
        if (y.Count > 0)
            fixed (float* pa = a.Data, pb = b.Data, pw = weight.Data, py = y.Data, pbias = bias is null ? default : bias.Contiguous().Data)
            {
                int k = ca + cb;
                if (pbias != null) Gemm.SgemmBatchedBias(batch, false, false, cout, hw, ca, pw, k, 0, pa, hw, (long)ca * hw, pbias, py, hw, (long)cout * hw);
                else Gemm.SgemmBatched(batch, false, false, cout, hw, ca, pw, k, 0, pa, hw, (long)ca * hw, 0f, py, hw, (long)cout * hw);
                Gemm.SgemmBatched(batch, false, false, cout, hw, cb, pw + ca, k, 0, pb, hw, (long)cb * hw, 1f, py, hw, (long)cout * hw);
            }
        if (OpProfiler.IsRunning) OpProfiler.Forward($"Conv2d 1x1 {ca}+{cb}->{cout} {h}x{w} (pair, no grad)");
        return y;
    }

    /// <summary>residual + conv(silu(group_norm(conv(silu(group_norm(x; γ1, β1)); w1, b1) + emb; γ2, β2)); w2, b2), both
    /// group norms with the same groups and eps, both convolutions 3×3 with padding 1. x: (B, C, H, W); w1: (Cout, C,
    /// 3, 3); w2: (Cout, Cout, 3, 3); γ1, β1: (C); γ2, β2, b1, b2: (Cout); emb: (B, Cout); residual: (B, Cout, H, W).
    /// With x2 (B, C2, H, W) not null the input is cat(x, x2) along the channels, the concatenation not made (then C
    /// counts both). Only where <see cref="ResBlockFuses(Tensor, int)"/>.</summary>
    public static Tensor ResBlockNoGrad(Tensor x, Tensor? x2, int groups, float eps, Tensor gamma1, Tensor beta1, Tensor w1, Tensor b1,
        Tensor emb, Tensor gamma2, Tensor beta2, Tensor w2, Tensor b2, Tensor residual)
    {
        int cout = w1.Rank == 4 ? w1.ShapeSpan[0] : -1;
        if (x.Rank != 4 || x2 is not null && (x2.Rank != 4 || x2.Dim(0) != x.Dim(0) || x2.Dim(2) != x.Dim(2) || x2.Dim(3) != x.Dim(3)))
            throw new ArgumentException($"ResBlockNoGrad: inputs {ShapeUtil.Format(x.ShapeSpan)} and {(x2 is null ? "none" : ShapeUtil.Format(x2.ShapeSpan))} are not (B, C, H, W) of one batch and size");
        int batch = x.ShapeSpan[0], c1 = x.ShapeSpan[1], c = c1 + (x2?.Dim(1) ?? 0), h = x.ShapeSpan[2], w = x.ShapeSpan[3], hw = h * w;
        if (!ResBlockFuses(batch, c, h, w, cout))
            throw new InvalidOperationException($"ResBlockNoGrad: input ({batch}, {c}, {h}, {w}) to {cout} channels does not run fused (gradients on, or not on the lane kernels)");
        Expect(w1, [cout, c, 3, 3], "w1"); Expect(w2, [cout, cout, 3, 3], "w2");
        Expect(gamma1, [c], "γ1"); Expect(beta1, [c], "β1"); Expect(gamma2, [cout], "γ2"); Expect(beta2, [cout], "β2");
        Expect(b1, [cout], "b1"); Expect(b2, [cout], "b2"); Expect(emb, [batch, cout], "emb"); Expect(residual, [batch, cout, h, w], "residual");
        if (groups < 1 || c % groups != 0 || cout % groups != 0)
            throw new ArgumentException($"ResBlockNoGrad: {groups} groups do not divide {c} and {cout} channels");

        x = x.Contiguous(); x2 = x2?.Contiguous(); emb = emb.Contiguous(); residual = residual.Contiguous();
        var y = Tensor.Uninitialized([batch, cout, h, w]);
        LaneWeights conv1 = default, conv2 = default;
        try
        {
            fixed (float* pw1 = w1.Contiguous().Data, pw2 = w2.Contiguous().Data)
            {
                conv1 = new LaneWeights(new ConvGeometry(c, h, w, 3, 3, 1, 1), pw1, cout);
                conv2 = new LaneWeights(new ConvGeometry(cout, h, w, 3, 3, 1, 1), pw2, cout);
            }
            fixed (float* px = x.Data, px2 = x2 is null ? default : x2.Data, pe = emb.Data, pr = residual.Data, py = y.Data,
                   pg1 = gamma1.Contiguous().Data, pbe1 = beta1.Contiguous().Data, pb1 = b1.Contiguous().Data,
                   pg2 = gamma2.Contiguous().Data, pbe2 = beta2.Contiguous().Data, pb2 = b2.Contiguous().Data)
            {
                var input = new ChannelPair(px, c1, px2, c - c1);
                var chain = new ResBlockChain(input, h, w, cout, groups, eps, pg1, pbe1, conv1, pb1, pe, pg2, pbe2, conv2, pb2, pr, py);
                if (ResBlockChain.SplitsBatch(batch, w))
                {
                    // 16 images per work item, each run through the whole block by one thread (the kernels inside run
                    // serially there): its lane tensors stay in that core's cache from one step to the next
                    int items = (batch + ResBlockChain.ImagesPerThread - 1) / ResBlockChain.ImagesPerThread;
                    ParallelFor.Run(items, new ResBlockChain.PerThread(chain, batch));
                }
                else
                {
                    // one group of images after another (the whole batch when it fits), each kernel on every thread
                    int group = ConvLanes.GroupImages(Math.Max(c, cout), h, w, batch);
                    for (int b0 = 0; b0 < batch; b0 += group) chain.Run(b0, Math.Min(group, batch - b0));
                }
            }
        }
        finally
        {
            conv1.Return();
            conv2.Return();
        }
        if (OpProfiler.IsRunning) OpProfiler.Forward($"ResBlock {c}->{cout} {h}x{w} (fused, no grad)");
        return y;

        static void Expect(Tensor t, int[] shape, string name)
        {
            if (!t.ShapeSpan.SequenceEqual(shape))
                throw new ArgumentException($"ResBlockNoGrad: {name} must be {ShapeUtil.Format(shape)}, got {ShapeUtil.Format(t.ShapeSpan)}");
        }
    }

    /// <summary>The fused block's steps for images b0 .. b0 + n − 1: statistics of group norm 1, its map on the way into the
    /// lanes, convolution 1, bias + embedding + group norm 2 + SiLU on the lane tensor, convolution 2, and the output back
    /// to NCHW with the bias and the residual. The pointers are pinned by the caller.</summary>
    readonly struct ResBlockChain(ChannelPair x, int h, int w, int cout, int groups, float eps, float* gamma1, float* beta1,
        LaneWeights conv1, float* b1, float* emb, float* gamma2, float* beta2, LaneWeights conv2, float* b2, float* residual, float* y)
    {
        /// <summary>Images per work item when the batch is split between threads: one Vector512 of lanes.</summary>
        public const int ImagesPerThread = 16;

        /// <summary>Whether the batch goes to the threads 16 images at a time rather than each step to every thread: for at
        /// least two such groups, on images up to 16 wide. Measured at batch 32, 2 threads, 300 interleaved runs: 3-8%
        /// faster at 7×7 and 14×14 (64 → 64 channels 14×14: 2.80 against 2.93 ms best), 2-5% slower at 28×28 (64 → 32:
        /// 6.51 against 6.26 ms), where one thread's lane tensors no longer fit its L2.</summary>
        public static bool SplitsBatch(int batch, int w) => batch >= 2 * ImagesPerThread && w <= 16 && Parallelism.MaxThreads > 1;

        public void Run(int b0, int n)
        {
            int hw = h * w, lanes = ConvLanes.Lanes(n), c = x.Channels;
            using var statsBuf = new AlignedScratch(3 * n * groups);                    // mean (hi, lo) pairs, then rstd
            using var tableBuf = new AlignedScratch(LaneNorm.TableFloats(c, lanes));
            using var xl1Buf = new AlignedScratch(conv1.InputFloats(lanes));
            using var ylBuf = new AlignedScratch(ConvLanes.Floats(cout, h, w, 0, lanes));
            using var xl2Buf = new AlignedScratch(conv2.InputFloats(lanes));
            float* stats = statsBuf.Pointer, table = tableBuf.Pointer, xl1 = xl1Buf.Pointer, yl = ylBuf.Pointer, xl2 = xl2Buf.Pointer;
            var xb = x.Skip(b0, hw);
            float* mean = stats, rstd = stats + 2 * n * groups;
            Norm.GroupNormStatistics(xb, mean, rstd, n, hw, groups, eps);
            LaneNorm.Table(mean, rstd, gamma1, beta1, 0, n, c, groups, lanes, table);
            ConvLanes.ToLanes(xb, n, h, w, 1, conv1.Hp, conv1.Wp, lanes, table, xl1);      // silu(gn1(x)) as lanes
            conv1.Forward(xl1, lanes, yl);
            LaneNorm.GroupNormSiluLanes(yl, n, cout, h, w, lanes, b1, emb + (long)b0 * cout, gamma2, beta2, groups, eps,
                conv2.Hp, conv2.Wp, xl2);                                                       // silu(gn2(h + emb))
            conv2.Forward(xl2, lanes, yl);
            long at = (long)b0 * cout * hw;
            ConvLanes.FromLanes(yl, n, cout, hw, lanes, b2, residual + at, y + at, accumulate: false);
        }

        /// <summary>Work item i: images 16·i .. of a batch.</summary>
        public readonly struct PerThread(ResBlockChain chain, int batch) : IWorkItem
        {
            public void Invoke(int i)
            {
                int b0 = i * ImagesPerThread;
                chain.Run(b0, Math.Min(ImagesPerThread, batch - b0));
            }
        }
    }
}

// Differentiable 2-D convolution (any kernel, stride, zero padding; NCHW like torch.nn.functional.conv2d) and the
// kernel-1 1-D convolution improved-diffusion uses for attention's qkv and proj_out (conv_nd(1, …, 1)).
//
// "Same" stride-1 convolutions with square odd kernels (3×3 pad 1: nearly every conv of a UNet) run on the direct
// kernels in Kernels/ConvDirect.cs for dx, and for the forward and dW (3×3 on AVX-512) on images at least 14 wide
// (ConvDirect.PreferForward: smaller ones are faster through im2col + GEMM); everything else is lowered to GEMM
// the classic way (Caffe / PyTorch slow_conv2d): im2col, then W (Cout, CKK) · col (CKK, N).
// Deviation: images are processed in chunks of G whose columns are folded side by side into one matrix
// (CKK, G·Ho·Wo), so every GEMM has a large N (forward, dx) or K (dW) even at 7×7, and the GEMM itself splits
// the work across threads. The chunk size depends only on the shapes, never on the thread count, so dW (summed
// over chunks in order, beta = 1) and everything else is bit-identical for any Parallelism.MaxThreads.
// With AVX-512 and a batch of at least 16, 3×3 same convolutions of small images take the kernels of
// Kernels/ConvLanes.cs, which put the batch in the vector lanes, up to 32×32: the forward and dx through the Winograd
// F(2×2, 3×3) kernel of Kernels/ConvWinograd.cs, dW directly; the forward of 3×3 stride-2 convolutions too.
// With many channels (at least 128 in and out, images at least 16 wide: Stable Diffusion's UNet and VAE) the forward of
// 3×3 same convolutions runs Winograd F(2×2, 3×3) through the GEMM (Kernels/ConvWinogradNchw.cs), 2.25× fewer
// multiply-adds; their backward stays on the direct kernels.
// 1×1 / stride 1 / no padding (and Conv1d) skips im2col: the image is its own column matrix, and its backward
// reads dy and x in place (dx per image, dW as one GEMM summed over the images).
// Saved for backward: the inputs, and, on the im2col path, the forward's column matrix when the whole batch's is at
// most ConvSaveColFloats (16 MB, where im2col is a large share of the time); larger ones are recomputed there
// rather than kept alive for every layer (PyTorch's slow_conv2d kept them all).
// The saved matrix is rented from the array pool and returned after backward.
using System.Buffers;
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>Floats of one chunk's column matrix (8 MB): big enough for long GEMMs, small enough to stay cached.</summary>
    internal static int ConvChunkFloats => KernelSwitches.Current.ConvChunkFloats;

    /// <summary>Largest whole-batch column matrix (floats) the forward keeps for backward instead of recomputing it.</summary>
    internal static int ConvSaveColFloats => KernelSwitches.Current.ConvSaveColFloats;

    /// <summary>y = conv2d(x, W) + b. x: (B, Cin, H, W), weight: (Cout, Cin, kh, kw), bias: (Cout) or null
    /// → (B, Cout, Ho, Wo), Ho = (H + 2·padding − kh)/stride + 1.</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride, int padding) =>
        Conv2d(x, weight, bias, stride, padding, residual: null);

    /// <summary>residual + Conv2d(x, weight, bias, stride, padding) in one pass (the residual added as the output is
    /// written, the bits of adding it afterwards); residual has the output's shape, or is null.</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride, int padding, Tensor? residual)
    {
        if (weight.Rank != 4 || weight.Count == 0)
            throw new ArgumentException($"Conv2d expects a non-empty weight (Cout, Cin, kh, kw), got {ShapeUtil.Format(weight.ShapeSpan)}");
        int cout = weight.ShapeSpan[0], cin = weight.ShapeSpan[1], kh = weight.ShapeSpan[2], kw = weight.ShapeSpan[3];
        if (x.Rank != 4 || x.ShapeSpan[1] != cin)
            throw new ArgumentException($"Conv2d expects input (B, {cin}, H, W) for weight {ShapeUtil.Format(weight.ShapeSpan)}, got {ShapeUtil.Format(x.ShapeSpan)}");
        if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), $"Conv2d: stride must be at least 1, got {stride}");
        if (padding < 0) throw new ArgumentOutOfRangeException(nameof(padding), $"Conv2d: padding must be non-negative, got {padding}");
        int h = x.ShapeSpan[2], w = x.ShapeSpan[3];
        if (h + 2 * padding < kh || w + 2 * padding < kw)
            throw new ArgumentException($"Conv2d: kernel {kh}×{kw} does not fit input {ShapeUtil.Format(x.ShapeSpan)} with padding {padding}");
        CheckBias("Conv2d", bias, cout);
        var g = new ConvGeometry(cin, h, w, kh, kw, stride, padding);
        int[] outShape = [x.ShapeSpan[0], cout, g.Ho, g.Wo];
        if (residual is not null && !residual.ShapeSpan.SequenceEqual(outShape))
            throw new ArgumentException($"Conv2d: the residual must have the output's shape {ShapeUtil.Format(outShape)}, got {ShapeUtil.Format(residual.ShapeSpan)}");
        return ConvCore("Conv2d", x, weight, bias, cout, g, outShape, residual);
    }

    /// <summary>Whether <see cref="UpsampleConv2dNoGrad"/> runs for x (B, C, H, W) to cout channels: no gradient recorded
    /// and the 3×3 convolution at 2H × 2W on the lane kernels or on NCHW Winograd (the kernels Conv2d picks there).</summary>
    public static bool UpsampleConvFuses(Tensor x, int cout) =>
        !GradMode.IsEnabled && x.Rank == 4 && UpsampleConvKernel(new ConvGeometry(x.Dim(1), 2 * x.Dim(2), 2 * x.Dim(3), 3, 3, 1, 1), cout, x.Dim(0)) != 0;

    /// <summary>The kernel ConvCore runs for the upsampled convolution: 1 lanes, 2 NCHW Winograd, 0 another one (which
    /// reads the upsampled image from memory, so the fused op does not apply).</summary>
    static int UpsampleConvKernel(in ConvGeometry g, int cout, int batch)
    {
        if (ConvLanes.PreferForward(g, cout, batch)) return 1;
        bool directFwd = ConvDirect.IsSupported(g) && ConvDirect.PreferForward(g);
        return directFwd && ConvWinogradNchw.Prefer(g, cout) ? 2 : 0;
    }

    /// <summary>conv2d(upsample_nearest_2x(x), weight, bias, padding 1) without gradients, weight (Cout, C, 3, 3): the
    /// upsampled tensor is never made, each value of x going straight to its four pixels of the lane tensor, or to the
    /// four places it takes in the Winograd tiles. The bits of the two ops. Only where <see cref="UpsampleConvFuses"/>.</summary>
    public static Tensor UpsampleConv2dNoGrad(Tensor x, Tensor weight, Tensor? bias)
    {
        int cout = weight.Rank == 4 ? weight.Dim(0) : -1;
        if (x.Rank != 4 || !weight.ShapeSpan.SequenceEqual([cout, x.Dim(1), 3, 3]))
            throw new ArgumentException($"UpsampleConv2d expects input (B, C, H, W) and weight (Cout, C, 3, 3), got {ShapeUtil.Format(x.ShapeSpan)} and {ShapeUtil.Format(weight.ShapeSpan)}");
        CheckBias("UpsampleConv2d", bias, cout);
        if (!UpsampleConvFuses(x, cout))
            throw new InvalidOperationException($"UpsampleConv2d: input {ShapeUtil.Format(x.ShapeSpan)} to {cout} channels does not run fused (gradients on, or not on the lane kernels)");
        x = x.Contiguous(); weight = weight.Contiguous();
        int batch = x.Dim(0);
        var g = new ConvGeometry(x.Dim(1), 2 * x.Dim(2), 2 * x.Dim(3), 3, 3, 1, 1);
        var y = Tensor.Uninitialized([batch, cout, g.Ho, g.Wo]);
        bool lanes = UpsampleConvKernel(g, cout, batch) == 1;
        if (y.Count > 0)
            fixed (float* px = x.Data, pw = weight.Data, py = y.Data, pb = bias is null ? default : bias.Contiguous().Data)
            {
                if (lanes) LanesConv(px, batch, g, pw, cout, pb, null, py, upsampled: true);
                else ConvWinogradNchw.Forward(px, batch, g, pw, cout, pb, py, upsampled: true);
            }
        if (OpProfiler.IsRunning) OpProfiler.Forward($"UpsampleConv2d 3x3 {g.C}->{cout} {g.H}x{g.W} (fused, no grad{(lanes ? "" : ", winograd")})");
        if (MemoryTrace.IsRunning) MemoryTrace.Sample("UpsampleConv2d", y);
        return y;
    }

    /// <summary>Kernel-1 conv1d, a per-position linear map over channels. x: (B, Cin, L), weight: (Cout, Cin, 1),
    /// bias: (Cout) or null → (B, Cout, L).</summary>
    public static Tensor Conv1d(Tensor x, Tensor weight, Tensor? bias) => Conv1d(x, weight, bias, residual: null);

    /// <summary>residual + Conv1d(x, weight, bias), the residual added as each image's output is finished (the bits of
    /// adding it afterwards); residual has the output's shape, or is null.</summary>
    public static Tensor Conv1d(Tensor x, Tensor weight, Tensor? bias, Tensor? residual)
    {
        if (weight.Rank != 3 || weight.Count == 0 || weight.ShapeSpan[2] != 1)
            throw new ArgumentException($"Conv1d supports kernel size 1 only: expects a non-empty weight (Cout, Cin, 1), got {ShapeUtil.Format(weight.ShapeSpan)}");
        int cout = weight.ShapeSpan[0], cin = weight.ShapeSpan[1];
        if (x.Rank != 3 || x.ShapeSpan[1] != cin)
            throw new ArgumentException($"Conv1d expects input (B, {cin}, L) for weight {ShapeUtil.Format(weight.ShapeSpan)}, got {ShapeUtil.Format(x.ShapeSpan)}");
        CheckBias("Conv1d", bias, cout);
        var g = new ConvGeometry(cin, 1, x.ShapeSpan[2], 1, 1, 1, 0);
        int[] outShape = [x.ShapeSpan[0], cout, x.ShapeSpan[2]];
        if (residual is not null && !residual.ShapeSpan.SequenceEqual(outShape))
            throw new ArgumentException($"Conv1d: the residual must have the output's shape {ShapeUtil.Format(outShape)}, got {ShapeUtil.Format(residual.ShapeSpan)}");
        return ConvCore("Conv1d", x, weight, bias, cout, g, outShape, residual);
    }

    static void CheckBias(string op, Tensor? bias, int cout)
    {
        if (bias is not null && (bias.Rank != 1 || bias.ShapeSpan[0] != cout))
            throw new ArgumentException($"{op} expects bias ({cout}), got {ShapeUtil.Format(bias.ShapeSpan)}");
    }

    /// <summary>Images per chunk: the fewest equal chunks whose column and output matrices fit ConvChunkFloats.</summary>
    static int ConvChunk(int batch, long floatsPerImage)
    {
        long chunks = Math.Max(1, (batch * floatsPerImage + ConvChunkFloats - 1) / ConvChunkFloats);
        return (int)Math.Max(1, (batch + chunks - 1) / chunks);
    }

    static Tensor ConvCore(string name, Tensor x, Tensor weight, Tensor? bias, int cout, ConvGeometry g, int[] outShape, Tensor? residual = null)
    {
        x = x.Contiguous(); weight = weight.Contiguous(); bias = bias?.Contiguous(); residual = residual?.Contiguous();
        int batch = x.ShapeSpan[0], cin = g.C, ckk = g.Ckk, hw = g.Ho * g.Wo;
        long xImage = (long)cin * g.H * g.W, yImage = (long)cout * hw;
        // direct kernels for dx of every supported shape; for the forward and dW only where they beat im2col + GEMM
        bool lanesForward = ConvLanes.PreferForward(g, cout, batch), lanesBackward = ConvLanes.PreferBackward(g, batch);
        bool direct = ConvDirect.IsSupported(g), directFwd = direct && ConvDirect.PreferForward(g);
        bool directDw = directFwd && ConvDirect.WeightGradSupported(g);
        bool winograd = !lanesForward && directFwd && ConvWinogradNchw.Prefer(g, cout);    // forward only
        // one chunking for forward and backward (so a saved column matrix lines up)
        int chunk = ConvChunk(batch, (long)Math.Max(ckk, Math.Max(cin, cout)) * hw);
        long colFloats = (long)batch * ckk * hw;
        float[]? savedCol = !g.IsPointwise && !directFwd && !lanesForward && GradMode.IsEnabled && weight.RequiresGrad && colFloats <= ConvSaveColFloats
            ? ArrayPool<float>.Shared.Rent((int)colFloats) : null;
        var y = Tensor.Uninitialized(outShape);                             // (B, Cout, Ho, Wo), every element written below
        if (y.Count > 0)
            fixed (float* px = x.Data, pw = weight.Data, py = y.Data, pb = bias is null ? default : bias.Data, pr = residual is null ? default : residual.Data)
            {
                if (g.IsPointwise)
                {
                    // y_b (Cout, HW) = W (Cout, Cin) · x_b (Cin, HW), the bias seeded into each y_b just before its product
                    // (and the residual added right after it)
                    if (pb != null) Gemm.SgemmBatchedBias(batch, false, false, cout, hw, cin, pw, cin, 0, px, hw, xImage, pb, py, hw, yImage, pr);
                    else
                    {
                        Gemm.SgemmBatched(batch, false, false, cout, hw, cin, pw, cin, 0, px, hw, xImage, 0f, py, hw, yImage);
                        if (pr != null) Binary.AddInPlace(y.Data, residual!.Data);
                    }
                }
                else if (lanesForward) LanesConv(px, batch, g, pw, cout, pb, pr, py);
                else if (winograd) ConvWinogradNchw.Forward(px, batch, g, pw, cout, pb, py);
                else if (directFwd) DirectConv(px, batch, g, pw, cout, cin, flipTranspose: false, pb, py, accumulate: false);
                else
                {
                    // chunk after chunk, either in one scratch matrix or side by side in the saved one:
                    // chunk b0 then starts at b0·CKK·HW
                    float[] colBuf = savedCol ?? ArrayPool<float>.Shared.Rent(ckk * chunk * hw);
                    float[] yBuf = ArrayPool<float>.Shared.Rent(cout * chunk * hw);
                    try
                    {
                        fixed (float* pcol = colBuf, yF = yBuf)
                            for (int b0 = 0; b0 < batch; b0 += chunk)
                            {
                                int n = Math.Min(chunk, batch - b0), nhw = n * hw;
                                float* col = savedCol is null ? pcol : pcol + (long)b0 * ckk * hw;
                                Im2Col.FoldedIm2Col(px + b0 * xImage, n, g, col);                        // (CKK, n·HW)
                                Gemm.Sgemm(false, false, cout, nhw, ckk, pw, ckk, col, nhw, 0f, yF, nhw);  // (Cout, n·HW)
                                Im2Col.Unfold(yF, n, cout, hw, pb, py + b0 * yImage);                    // (n, Cout, HW) + b
                            }
                    }
                    finally
                    {
                        if (savedCol is null) ArrayPool<float>.Shared.Return(colBuf);
                        ArrayPool<float>.Shared.Return(yBuf);
                    }
                }
            }

        if (residual is not null && !lanesForward && !g.IsPointwise && y.Count > 0)
            Binary.AddInPlace(y.Data, residual.Data);                         // y + r: the same bits as r + y
        Tensor[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        if (residual is not null) inputs = [.. inputs, residual];
        if (OpProfiler.IsRunning)                                                   // per shape, for bench train --profile
            name = $"{name} {g.Kh}x{g.Kw} {cin}->{cout} {g.H}x{g.W}" + (g.Stride > 1 ? $" s{g.Stride}" : "") + (lanesForward ? " lanes" : winograd ? " winograd" : directFwd ? " direct" : "") + (lanesBackward ? " bwd-lanes" : direct ? " dx-direct" : "");
        return Graph.Record(name, y, inputs, dy =>
        {
            // forward was y[b, o, q] = Σ_r W[o, r] · col_b[r, q] + bias[o], with col_b = im2col(x_b), so
            //   db[o]   += Σ_b Σ_q dy[b, o, q]
            //   dW      += Σ_b dy_b (Cout, HW) · col_bᵀ (HW, CKK)  = dyF (Cout, n·HW) · colᵀ per chunk, in chunk order
            //   dx_b    += col2im(Wᵀ (CKK, Cout) · dy_b (Cout, HW))   (im2col is linear; col2im is its adjoint)
            // For a "same" stride-1 convolution that col2im is the convolution of dy with the flipped, transposed
            // kernel and the same padding (dx[c, iy, ix] = Σ_o Σ_(i,j) dy[o, iy + p − i, ix + p − j] · W[o, c, i, j]),
            // which the direct kernel computes.
            if (residual is not null && residual.RequiresGrad) residual.AccumulateGrad(dy.Data);
            try { if (batch > 0) ConvBackward(dy); }
            finally { if (savedCol is not null) ArrayPool<float>.Shared.Return(savedCol); }
        });

        void ConvBackward(Tensor dy)
        {
            bool needX = x.RequiresGrad, needW = weight.RequiresGrad;
            fixed (float* px = x.Data, pw = weight.Data, pdy = dy.Data, psaved = savedCol)
            {
                if (bias is not null && bias.RequiresGrad)
                    fixed (float* pdb = bias.GradData()) Im2Col.BiasGrad(pdy, batch, cout, hw, pdb);
                if (lanesBackward)
                {
                    bool accumulateDx = false;                                             // a fresh dx is written, not added
                    var dxData = needX ? x.GradForWrite(out accumulateDx) : default;
                    fixed (float* pdx = dxData, pdw = needW ? weight.GradData() : default)
                        LanesBackward(px, pdy, batch, g, pw, cout, pdx, pdw, accumulateDx);
                    return;
                }
                if (g.IsPointwise)
                {
                    // 1×1: col_b = x_b, so dx_b (Cin, HW) += Wᵀ (Cin, Cout) · dy_b (Cout, HW) straight into the gradient
                    // (written, not added, when x has none yet), and dW (Cout, Cin) += Σ_b dy_b · x_bᵀ as one product
                    // whose K runs through the images in place
                    if (needX)
                    {
                        fixed (float* pdx = x.GradForWrite(out bool accumulate))
                            Gemm.SgemmBatched(batch, true, false, cin, hw, cout, pw, cin, 0, pdy, hw, yImage, accumulate ? 1f : 0f, pdx, hw, xImage);
                    }
                    if (needW)
                        fixed (float* pdw = weight.GradData())
                            Gemm.SgemmSum(batch, false, true, cout, cin, hw, pdy, hw, yImage, px, hw, xImage, 1f, pdw, cin);
                    return;
                }
                if (needX && direct)
                {
                    var gT = new ConvGeometry(cout, g.H, g.W, g.Kh, g.Kw, 1, g.Pad);      // dy (B, Cout, H, W) as the input
                    fixed (float* pdx = x.GradData()) DirectConv(pdy, batch, gT, pw, cout, cin, flipTranspose: true, null, pdx, accumulate: true);
                    needX = false;
                }
                if (needW && directDw)
                {
                    fixed (float* pdw = weight.GradData()) DirectWeightGrad(px, pdy, batch, g, cout, pdw);
                    needW = false;
                }
                if (!needX && !needW) return;
                float[] colBuf = ArrayPool<float>.Shared.Rent(needX || psaved == null ? ckk * chunk * hw : 0);
                float[] dyBuf = ArrayPool<float>.Shared.Rent(cout * chunk * hw);
                try
                {
                    fixed (float* col = colBuf, dyF = dyBuf, pdw = needW ? weight.GradData() : default, pdx = needX ? x.GradData() : default)
                        for (int b0 = 0; b0 < batch; b0 += chunk)
                        {
                            int n = Math.Min(chunk, batch - b0), nhw = n * hw;
                            float* xChunk = px + b0 * xImage;
                            Im2Col.Fold(pdy + b0 * yImage, n, cout, hw, dyF);                           // (Cout, n·HW)
                            if (needW)
                            {
                                float* xcol = col;
                                if (psaved != null) xcol = psaved + (long)b0 * ckk * hw;                  // the forward's (CKK, n·HW)
                                else if (g.IsPointwise) Im2Col.Fold(xChunk, n, cin, hw, col);            // (Cin, n·HW)
                                else Im2Col.FoldedIm2Col(xChunk, n, g, col);                             // (CKK, n·HW)
                                Gemm.Sgemm(false, true, cout, ckk, nhw, dyF, nhw, xcol, nhw, 1f, pdw, ckk); // (Cout, CKK)
                            }
                            if (needX)
                            {
                                Gemm.Sgemm(true, false, ckk, nhw, cout, pw, ckk, dyF, nhw, 0f, col, nhw);  // (CKK, n·HW)
                                Im2Col.FoldedCol2Im(col, n, g, pdx + b0 * xImage);                       // (n, Cin, H, W)
                            }
                        }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(colBuf);
                    ArrayPool<float>.Shared.Return(dyBuf);
                }
            }
        }
    }

    /// <summary>dW (cout, C, 3, 3) += Σ_b dy_b ⋆ x_b with the direct kernel: x (count, C, H, W), dy (count, cout, H, W).</summary>
    static void DirectWeightGrad(float* x, float* dy, int count, in ConvGeometry g, int cout, float* dw)
    {
        using var xpBuf = new AlignedScratch(ConvDirect.PaddedFloats(g, count));
        using var dyBuf = new AlignedScratch(ConvDirect.PaddedRowsFloats(g, count, cout));
        float* xp = xpBuf.Pointer, dyz = dyBuf.Pointer;
        ConvDirect.Pad(x, count, g, xp);                          // (count, C, H + 2p, W + 2p)
        ConvDirect.PadRows(dy, count, cout, g, dyz);              // (count, cout, H·(W + 2p)), zero extra columns
        ConvDirect.WeightGrad(xp, dyz, count, g, cout, dw);       // (cout, C, 3, 3)
    }

    /// <summary>output (count, cout, Ho, Wo) = the 3×3 convolution (stride 1, or 2 for ConvLanes.IsStrided) of input
    /// (count, g.C, H, W) with w (cout, g.C, 3, 3) plus bias, with the batch in the vector lanes, group of images after
    /// group of images (ConvLanes.GroupImages), on the Winograd kernel where it pays and the direct lane kernel
    /// elsewhere. dx goes through LanesBackward (stride 1) or im2col (stride 2). With upsampled the input is (count, g.C,
    /// H/2, W/2), nearest-upsampled ×2 on its way into the lanes.</summary>
    static void LanesConv(float* input, int count, in ConvGeometry g, float* w, int cout, float* bias, float* residual, float* output,
        bool upsampled = false)
    {
        int hw = upsampled ? g.H / 2 * (g.W / 2) : g.H * g.W, outHw = g.Ho * g.Wo;
        int group = ConvLanes.GroupImages(Math.Max(g.C, cout), g.H, g.W, count), lanes = ConvLanes.Lanes(group);
        var weights = new LaneWeights(g, w, cout);
        try
        {
            using var xlBuf = new AlignedScratch(weights.InputFloats(lanes));
            using var ylBuf = new AlignedScratch(ConvLanes.Floats(cout, g.Ho, g.Wo, 0, lanes));
            float* xl = xlBuf.Pointer, yl = ylBuf.Pointer;
            for (int b0 = 0; b0 < count; b0 += group)
            {
                int n = Math.Min(group, count - b0), nLanes = ConvLanes.Lanes(n);
                if (upsampled) ConvLanes.ToLanesUpsampled(input + (long)b0 * g.C * hw, n, g.C, g.H / 2, g.W / 2, 1, weights.Hp, weights.Wp, nLanes, xl);
                else ConvLanes.ToLanes(input + (long)b0 * g.C * hw, n, g.C, g.H, g.W, 1, weights.Hp, weights.Wp, nLanes, xl);  // (C, hp, wp, lanes)
                weights.Forward(xl, nLanes, yl);                                                                     // (cout, Ho, Wo, lanes)
                long at = (long)b0 * cout * outHw;
                ConvLanes.FromLanes(yl, n, cout, outHw, nLanes, bias, residual == null ? null : residual + at, output + at, accumulate: false);
            }
        }
        finally
        {
            weights.Return();
        }
    }

    /// <summary>The weights of a 3×3 lane convolution (stride 1, or 2 for ConvLanes.IsStrided), transformed once for
    /// every group of images: for the Winograd kernel where it pays, else packed for the direct lane kernel. Return()
    /// gives the buffer back.</summary>
    readonly struct LaneWeights
    {
        readonly float[] _buf;
        readonly ConvGeometry _g;
        readonly int _cout;
        public readonly bool Winograd;
        /// <summary>The padded plane of the input lane tensor (LanePlane).</summary>
        public readonly int Hp, Wp;

        public LaneWeights(in ConvGeometry g, float* w, int cout)
        {
            (_g, _cout, Winograd) = (g, cout, ConvWinograd.Pays(g, cout));
            (Hp, Wp) = LanePlane(g, Winograd);
            _buf = ArrayPool<float>.Shared.Rent(Winograd ? ConvWinograd.TransformedWeightFloats(cout, g.C) : ConvDirect.PackedWeightFloats(cout, g.C, 3));
            fixed (float* wpk = _buf)
            {
                if (Winograd) ConvWinograd.TransformWeights(w, cout, g.C, flipTranspose: false, wpk);  // [16][cout/8][C][8]
                else ConvDirect.PackWeights(w, cout, g.C, 3, flipTranspose: false, wpk);             // [cout/8][C][9][8]
            }
        }

        /// <summary>Floats of the input lane tensor for this many lanes.</summary>
        public int InputFloats(int lanes) => checked(_g.C * Hp * Wp * lanes);

        /// <summary>yl (cout, Ho, Wo, lanes) = the convolution of xl (C, Hp, Wp, lanes), without the bias.</summary>
        public void Forward(float* xl, int lanes, float* yl)
        {
            fixed (float* wpk = _buf)
            {
                if (Winograd) ConvWinograd.Forward(xl, _g, lanes, wpk, _cout, yl);
                else ConvLanes.Forward(xl, _g, lanes, wpk, _cout, yl);
            }
        }

        public void Return()
        {
            if (_buf is not null) ArrayPool<float>.Shared.Return(_buf);
        }
    }

    /// <summary>The padded plane of an input lane tensor: (H + 2) × (W + 2) for the direct lane kernels, whole tiles'
    /// patches (one more row and column for odd sizes) for the Winograd kernel.</summary>
    static (int Hp, int Wp) LanePlane(in ConvGeometry g, bool winograd) =>
        winograd ? (ConvWinograd.PaddedSize(g.H), ConvWinograd.PaddedSize(g.W)) : (g.H + 2, g.W + 2);

    /// <summary>dx (count, cin, H, W) += (or = without accumulateDx) conv(dy, flipped Wᵀ) and dW (cout, cin, 3, 3) += Σ dy ⋆ x on the lane kernels;
    /// dx or dw null when not wanted. Each group's dy is laid out in lanes once for both (twice for odd sizes, where
    /// Winograd's tiles overhang the image and need a larger plane); the groups add into dW in order, so the sum does not depend on the
    /// thread count.</summary>
    static void LanesBackward(float* x, float* dy, int count, in ConvGeometry g, float* w, int cout, float* dx, float* dw, bool accumulateDx)
    {
        int cin = g.C, hw = g.H * g.W;
        int group = ConvLanes.GroupImages(Math.Max(cin, cout), g.H, g.W, count), lanes = ConvLanes.Lanes(group);
        var gT = g with { C = cout };                                                      // dy (count, cout, H, W) as the input
        bool winograd = dx != null && ConvWinograd.Pays(gT, cin);
        var (hp, wp) = LanePlane(g, winograd);
        bool apart = dw != null && (hp, wp) != LanePlane(g, false);                             // dW's dy on its own plane
        using var dylBuf = new AlignedScratch((long)cout * hp * wp * lanes);
        using var dywBuf = apart ? new AlignedScratch(ConvLanes.Floats(cout, g.H, g.W, 1, lanes)) : default;
        using var bufA = new AlignedScratch(ConvLanes.Floats(cin, g.H, g.W, 1, lanes));
        using var wBuf = new AlignedScratch(dx == null ? 0 : winograd ? ConvWinograd.TransformedWeightFloats(cin, cout) : ConvDirect.PackedWeightFloats(cin, cout, 3));
        float* dyl = dylBuf.Pointer, dyw = dywBuf.Pointer, a = bufA.Pointer, wpk = wBuf.Pointer;
        if (winograd) ConvWinograd.TransformWeights(w, cout, cin, flipTranspose: true, wpk);       // [16][cin/8][cout][8]
        else if (dx != null) ConvDirect.PackWeights(w, cout, cin, 3, flipTranspose: true, wpk);   // [cin/8][cout][9][8]
        for (int b0 = 0; b0 < count; b0 += group)
        {
            int n = Math.Min(group, count - b0), nLanes = ConvLanes.Lanes(n);
            float* dyb = dy + (long)b0 * cout * hw;
            ConvLanes.ToLanes(dyb, n, cout, g.H, g.W, 1, hp, wp, nLanes, dyl);                  // (cout, hp, wp, lanes)
            if (dw != null)
            {
                if (apart) ConvLanes.ToLanes(dyb, n, cout, g.H, g.W, 1, nLanes, dyw);            // (cout, H + 2, W + 2, lanes)
                ConvLanes.ToLanes(x + (long)b0 * cin * hw, n, cin, g.H, g.W, 1, nLanes, a);       // (cin, H + 2, W + 2, lanes)
                ConvLanes.WeightGrad(a, apart ? dyw : dyl, g, nLanes, cout, dw);
            }
            if (dx != null)
            {
                if (winograd) ConvWinograd.Forward(dyl, gT, nLanes, wpk, cin, a);                // (cin, H, W, lanes)
                else ConvLanes.Forward(dyl, gT, nLanes, wpk, cin, a);
                ConvLanes.FromLanes(a, n, cin, hw, nLanes, null, dx + (long)b0 * cin * hw, accumulateDx);
            }
        }
    }

    /// <summary>output (count, outC, H, W) = (or += with accumulate) the direct convolution of input (count, g.C, H, W)
    /// with w (cout, cin, k, k), or with its flipped transpose for dx (outC = cin), plus bias.</summary>
    static void DirectConv(float* input, int count, in ConvGeometry g, float* w, int cout, int cin, bool flipTranspose,
        float* bias, float* output, bool accumulate)
    {
        int outC = flipTranspose ? cin : cout;
        using var xpBuf = new AlignedScratch(ConvDirect.PaddedFloats(g, count));
        using var wBuf = new AlignedScratch(ConvDirect.PackedWeightFloats(outC, g.C, g.Kh));
        float* xp = xpBuf.Pointer, wpk = wBuf.Pointer;
        ConvDirect.Pad(input, count, g, xp);                                         // (count, C, H + 2p, W + 2p)
        ConvDirect.PackWeights(w, cout, cin, g.Kh, flipTranspose, wpk);              // [outC/8][C][k·k][8]
        ConvDirect.Forward(xp, count, g, wpk, outC, bias, output, accumulate);       // (count, outC, H, W)
    }
}

// Differentiable 2-D convolution (any kernel, stride, zero padding; NCHW like torch.nn.functional.conv2d) and the
// kernel-1 1-D convolution improved-diffusion uses for attention's qkv and proj_out (conv_nd(1, …, 1)).
//
// Lowered to GEMM the classic way (Caffe / PyTorch slow_conv2d): im2col, then W (Cout, CKK) · col (CKK, N).
// Deviation: images are processed in chunks of G whose columns are folded side by side into one matrix
// (CKK, G·Ho·Wo), so every GEMM has a large N (forward, dx) or K (dW) even at 7×7, and the GEMM itself splits
// the work across threads. The chunk size depends only on the shapes, never on the thread count, so dW (summed
// over chunks in order, beta = 1) and everything else is bit-identical for any Parallelism.MaxThreads.
// 1×1 / stride 1 / no padding (and Conv1d) skips im2col: the image is its own column matrix.
// Nothing is saved for backward but the inputs: im2col is recomputed there (cheaper than keeping a
// CKK·Ho·Wo matrix per image alive for every layer of a UNet). For "same" stride-1 convolutions dx is computed as
// the convolution of dy with the flipped kernel (im2col of dy + a forward-shaped GEMM) instead of col2im.
using System.Buffers;
using DiffuSharp.Kernels;

namespace DiffuSharp.Autograd;

internal static unsafe partial class Ops
{
    /// <summary>Floats of one chunk's column matrix (8 MB): big enough for long GEMMs, small enough to stay cached.</summary>
    internal static int ConvChunkFloats = 1 << 21;

    /// <summary>y = conv2d(x, W) + b. x: (B, Cin, H, W), weight: (Cout, Cin, kh, kw), bias: (Cout) or null
    /// → (B, Cout, Ho, Wo), Ho = (H + 2·padding − kh)/stride + 1.</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, int stride, int padding)
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
        return ConvCore("Conv2d", x, weight, bias, cout, g, [x.ShapeSpan[0], cout, g.Ho, g.Wo]);
    }

    /// <summary>Kernel-1 conv1d, a per-position linear map over channels. x: (B, Cin, L), weight: (Cout, Cin, 1),
    /// bias: (Cout) or null → (B, Cout, L).</summary>
    public static Tensor Conv1d(Tensor x, Tensor weight, Tensor? bias)
    {
        if (weight.Rank != 3 || weight.Count == 0 || weight.ShapeSpan[2] != 1)
            throw new ArgumentException($"Conv1d supports kernel size 1 only: expects a non-empty weight (Cout, Cin, 1), got {ShapeUtil.Format(weight.ShapeSpan)}");
        int cout = weight.ShapeSpan[0], cin = weight.ShapeSpan[1];
        if (x.Rank != 3 || x.ShapeSpan[1] != cin)
            throw new ArgumentException($"Conv1d expects input (B, {cin}, L) for weight {ShapeUtil.Format(weight.ShapeSpan)}, got {ShapeUtil.Format(x.ShapeSpan)}");
        CheckBias("Conv1d", bias, cout);
        var g = new ConvGeometry(cin, 1, x.ShapeSpan[2], 1, 1, 1, 0);
        return ConvCore("Conv1d", x, weight, bias, cout, g, [x.ShapeSpan[0], cout, x.ShapeSpan[2]]);
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

    static Tensor ConvCore(string name, Tensor x, Tensor weight, Tensor? bias, int cout, ConvGeometry g, int[] outShape)
    {
        x = x.Contiguous(); weight = weight.Contiguous(); bias = bias?.Contiguous();
        int batch = x.ShapeSpan[0], cin = g.C, ckk = g.Ckk, hw = g.Ho * g.Wo;
        long xImage = (long)cin * g.H * g.W, yImage = (long)cout * hw;
        int chunk = ConvChunk(batch, (long)Math.Max(ckk, cout) * hw);
        var y = Tensor.Uninitialized(outShape);                             // (B, Cout, Ho, Wo), every element written below
        if (y.Count > 0)
            fixed (float* px = x.Data, pw = weight.Data, py = y.Data, pb = bias is null ? default : bias.Data)
            {
                if (g.IsPointwise)
                {
                    // y_b (Cout, HW) = W (Cout, Cin) · x_b (Cin, HW), the bias seeded into y and added by beta = 1
                    if (pb != null) Im2Col.FillBias(py, batch, cout, hw, pb);
                    Gemm.SgemmBatched(batch, false, false, cout, hw, cin, pw, cin, 0, px, hw, xImage, pb != null ? 1f : 0f, py, hw, yImage);
                }
                else
                {
                    float[] colBuf = ArrayPool<float>.Shared.Rent(ckk * chunk * hw);
                    float[] yBuf = ArrayPool<float>.Shared.Rent(cout * chunk * hw);
                    try
                    {
                        fixed (float* col = colBuf, yF = yBuf)
                            for (int b0 = 0; b0 < batch; b0 += chunk)
                            {
                                int n = Math.Min(chunk, batch - b0), nhw = n * hw;
                                Im2Col.FoldedIm2Col(px + b0 * xImage, n, g, col);                        // (CKK, n·HW)
                                Gemm.Sgemm(false, false, cout, nhw, ckk, pw, ckk, col, nhw, 0f, yF, nhw);  // (Cout, n·HW)
                                Im2Col.Unfold(yF, n, cout, hw, pb, py + b0 * yImage);                    // (n, Cout, HW) + b
                            }
                    }
                    finally
                    {
                        ArrayPool<float>.Shared.Return(colBuf);
                        ArrayPool<float>.Shared.Return(yBuf);
                    }
                }
            }

        Tensor[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        return Graph.Record(name, y, inputs, dy =>
        {
            // forward was y[b, o, q] = Σ_r W[o, r] · col_b[r, q] + bias[o], with col_b = im2col(x_b), so
            //   db[o]   += Σ_b Σ_q dy[b, o, q]
            //   dW      += Σ_b dy_b (Cout, HW) · col_bᵀ (HW, CKK)  = dyF (Cout, n·HW) · colᵀ per chunk, in chunk order
            //   dx_b    += col2im(Wᵀ (CKK, Cout) · dy_b (Cout, HW))   (im2col is linear; col2im is its adjoint)
            // For a stride-1 convolution that keeps the size (3×3 pad 1), that col2im equals a convolution of dy
            // with the flipped, transposed kernel, same padding: dx_b += Wᵀflip (Cin, Cout·kk) · im2col(dy_b). That
            // GEMM has the forward's long K instead of K = Cout, and writes Cin·HW instead of CKK·HW floats.
            if (batch == 0) return;
            bool needX = x.RequiresGrad, needW = weight.RequiresGrad;
            fixed (float* px = x.Data, pw = weight.Data, pdy = dy.Data)
            {
                if (bias is not null && bias.RequiresGrad)
                    fixed (float* pdb = bias.GradData()) Im2Col.BiasGrad(pdy, batch, cout, hw, pdb);
                if (needX && g.IsPointwise)
                {
                    // 1×1: col_b = x_b, so dx_b (Cin, HW) += Wᵀ (Cin, Cout) · dy_b (Cout, HW) straight into the gradient
                    fixed (float* pdx = x.GradData())
                        Gemm.SgemmBatched(batch, true, false, cin, hw, cout, pw, cin, 0, pdy, hw, yImage, 1f, pdx, hw, xImage);
                    needX = false;
                }
                if (!needX && !needW) return;
                bool flip = needX && g.IsSame && g.Kh == g.Kw;
                var gT = new ConvGeometry(cout, g.H, g.W, g.Kh, g.Kw, 1, g.Pad);          // im2col of dy (B, Cout, H, W)
                int kk = g.Kh * g.Kw, ckkT = cout * kk;
                int bchunk = ConvChunk(batch, (long)Math.Max(Math.Max(ckk, ckkT), Math.Max(cin, cout)) * hw);
                float[] colBuf = ArrayPool<float>.Shared.Rent(Math.Max(ckk, flip ? ckkT : 0) * bchunk * hw);
                float[] dyBuf = ArrayPool<float>.Shared.Rent(Math.Max(cout, flip ? cin : 0) * bchunk * hw);
                float[] wtBuf = ArrayPool<float>.Shared.Rent(flip ? weight.Count : 0);
                try
                {
                    fixed (float* col = colBuf, dyF = dyBuf, wT = wtBuf, pdw = needW ? weight.GradData() : default, pdx = needX ? x.GradData() : default)
                    {
                        if (flip) Im2Col.FlipTranspose(pw, cout, cin, g.Kh, g.Kw, wT);        // (Cin, Cout·kk)
                        for (int b0 = 0; b0 < batch; b0 += bchunk)
                        {
                            int n = Math.Min(bchunk, batch - b0), nhw = n * hw;
                            float* dyChunk = pdy + b0 * yImage, xChunk = px + b0 * xImage, dxChunk = pdx + b0 * xImage;
                            if (needW || !flip) Im2Col.Fold(dyChunk, n, cout, hw, dyF);                 // (Cout, n·HW)
                            if (needW)
                            {
                                if (g.IsPointwise) Im2Col.Fold(xChunk, n, cin, hw, col);                 // (Cin, n·HW)
                                else Im2Col.FoldedIm2Col(xChunk, n, g, col);                             // (CKK, n·HW)
                                Gemm.Sgemm(false, true, cout, ckk, nhw, dyF, nhw, col, nhw, 1f, pdw, ckk); // (Cout, CKK)
                            }
                            if (needX && flip)
                            {
                                Im2Col.FoldedIm2Col(dyChunk, n, gT, col);                                // (Cout·kk, n·HW)
                                Gemm.Sgemm(false, false, cin, nhw, ckkT, wT, ckkT, col, nhw, 0f, dyF, nhw); // (Cin, n·HW)
                                Im2Col.UnfoldAdd(dyF, n, cin, hw, dxChunk);                              // (n, Cin, H, W)
                            }
                            else if (needX)
                            {
                                Gemm.Sgemm(true, false, ckk, nhw, cout, pw, ckk, dyF, nhw, 0f, col, nhw);  // (CKK, n·HW)
                                Im2Col.FoldedCol2Im(col, n, g, dxChunk);                                 // (n, Cin, H, W)
                            }
                        }
                    }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(colBuf);
                    ArrayPool<float>.Shared.Return(dyBuf);
                    ArrayPool<float>.Shared.Return(wtBuf);
                }
            }
        });
    }
}

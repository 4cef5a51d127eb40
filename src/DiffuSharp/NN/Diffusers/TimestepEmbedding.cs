// diffusers' Timesteps + TimestepEmbedding (models/embeddings.py, get_timestep_embedding): sinusoids of the
// timestep, sin half then cos half (swapped when flip_sin_to_cos), frequencies exp(−ln(10⁴)·i / (half − shift)),
// computed in float32 step by step as torch does; then linear_1 → act → linear_2 (→ post_act).
namespace DiffuSharp.NN.Diffusers;

/// <summary>diffusers' TimestepEmbedding: linear_1 → act → linear_2 (→ optional post_act) applied to the sinusoidal
/// timestep features.</summary>
public sealed class TimestepEmbedding : Module
{
    readonly Linear _linear1, _linear2;
    readonly Activation _act;
    readonly Activation? _postAct;

    /// <summary>An MLP from the <paramref name="inChannels"/> sinusoid features to <paramref name="timeEmbedDim"/>,
    /// with <paramref name="act"/> between the layers and <paramref name="postAct"/> (or nothing) after; weights drawn
    /// from <paramref name="rng"/>.</summary>
    public TimestepEmbedding(int inChannels, int timeEmbedDim, Activation act, Activation? postAct, Rng rng)
    {
        (_act, _postAct) = (act, postAct);
        _linear1 = Register("linear_1", new Linear(inChannels, timeEmbedDim, rng));
        _linear2 = Register("linear_2", new Linear(timeEmbedDim, timeEmbedDim, rng));
    }

    /// <summary>t: (B, in) → (B, timeEmbedDim)</summary>
    public Tensor Forward(Tensor t)
    {
        var h = _linear2.Forward(_act.Apply(_linear1.Forward(t)));
        return _postAct is { } p ? p.Apply(h) : h;
    }

    /// <summary>The UNets' conditioning vector (UNet2DModel, UNet2DConditionModel, ControlNetModel alike): this
    /// embedding of the timesteps' sinusoids, plus class_embedding(classLabels) when the model has one.
    /// timesteps (B) → (B, timeEmbedDim).</summary>
    internal Tensor Embed(ReadOnlySpan<float> timesteps, int sinusoidDim, bool flipSinToCos, float freqShift, Embedding? classEmbedding, int[]? classLabels)
    {
        var emb = Forward(Sinusoids(timesteps, sinusoidDim, flipSinToCos, freqShift));   // (B, temb)
        if (classEmbedding is not null) emb += classEmbedding.Forward(classLabels!);
        return emb;
    }

    /// <summary>get_timestep_embedding: timesteps (B) → (B, dim), float32 throughout as the reference.</summary>
    public static Tensor Sinusoids(ReadOnlySpan<float> timesteps, int dim, bool flipSinToCos, float downscaleFreqShift, double maxPeriod = 10000)
    {
        int b = timesteps.Length, half = dim / 2;
        var result = Tensor.Zeros(b, dim);                                  // (B, dim); an odd dim leaves the last column 0
        var emb = result.Data;
        float negLog = (float)-Math.Log(maxPeriod);
        float denom = half - downscaleFreqShift;
        var freqs = new float[half];
        for (int i = 0; i < half; i++) freqs[i] = MathF.Exp(negLog * i / denom);
        int sinAt = flipSinToCos ? half : 0, cosAt = flipSinToCos ? 0 : half;
        for (int n = 0; n < b; n++)
            for (int i = 0; i < half; i++)
            {
                float arg = timesteps[n] * freqs[i];
                emb[n * dim + sinAt + i] = MathF.Sin(arg);
                emb[n * dim + cosAt + i] = MathF.Cos(arg);
            }
        return result;
    }

    /// <summary>Timesteps as diffusers accepts them: a scalar, (1) or (B), broadcast to the batch.</summary>
    public static float[] Broadcast(Tensor timesteps, int batch, string model)
    {
        var t = timesteps.Contiguous().ToArray();
        if (timesteps.Rank > 1 || (t.Length != 1 && t.Length != batch))
            throw new ArgumentException($"{model}: timesteps must be a scalar, (1) or ({batch}), got {ShapeUtil.Format(timesteps.Shape)}");
        return t.Length == batch ? t : Enumerable.Repeat(t[0], batch).ToArray();
    }
}

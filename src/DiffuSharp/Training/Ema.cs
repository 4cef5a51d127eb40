// Exponential moving average of parameters, as improved-diffusion's update_ema (nn.py):
// targ ← rate·targ + (1 − rate)·src, computed as torch's targ.mul_(rate).add_(src, alpha=1 − rate) in float32
// (one fused multiply-add per element, see Kernels/Optim.cs). The average starts as a copy of the parameters
// (improved-diffusion deep-copies them). Keep one Ema per rate (improved-diffusion's ema_rate "0.9999,0.999").
using DiffuSharp.Kernels;

namespace DiffuSharp.Training;

/// <summary>Checkpointable EMA state: the rate and the averaged values per parameter.</summary>
public sealed record EmaState(double Rate, float[][] Values);

/// <summary>An exponential moving average of a list of parameters, held in its own tensors.</summary>
public sealed class Ema
{
    readonly Tensor[] _source;
    readonly Tensor[] _shadow;

    /// <summary>The decay per update, in [0, 1] (e.g. 0.9999): shadow ← rate·shadow + (1 − rate)·param.</summary>
    public double Rate { get; }

    /// <summary>The averaged parameters, in the order of the source list (no autograd).</summary>
    public IReadOnlyList<Tensor> Shadow => _shadow;

    /// <param name="parameters">the live parameters (contiguous), copied now and averaged by <see cref="Update()"/></param>
    /// <param name="rate">decay per update, e.g. 0.9999</param>
    public Ema(IReadOnlyList<Tensor> parameters, double rate)
    {
        if (!(rate >= 0 && rate <= 1)) throw new ArgumentException($"Ema: rate must be in [0, 1], got {rate}");
        Rate = rate;
        _source = new Tensor[parameters.Count];
        _shadow = new Tensor[parameters.Count];
        for (int i = 0; i < _source.Length; i++)
        {
            var p = parameters[i];
            if (!p.IsContiguous) throw new ArgumentException($"Ema: parameter {i} {ShapeUtil.Format(p.ShapeSpan)} is not contiguous");
            _source[i] = p;
            using (TensorScope.Suspend()) _shadow[i] = p.Clone();   // the average outlives any scope
        }
    }

    /// <summary>shadow ← rate·shadow + (1 − rate)·parameters.</summary>
    public void Update()
    {
        float rate = (float)Rate, oneMinus = (float)(1 - Rate);
        for (int i = 0; i < _source.Length; i++) Optim.EmaUpdate(_shadow[i].Data, _source[i].Data, rate, oneMinus);
    }

    /// <summary>shadow ← r·shadow + (1 − r)·parameters with this update's rate r (e.g. a warm-up rate below <see cref="Rate"/>).</summary>
    public void Update(double rate)
    {
        if (!(rate >= 0 && rate <= 1)) throw new ArgumentException($"Ema: rate must be in [0, 1], got {rate}");
        float r = (float)rate, oneMinus = (float)(1 - rate);
        for (int i = 0; i < _source.Length; i++) Optim.EmaUpdate(_shadow[i].Data, _source[i].Data, r, oneMinus);
    }

    /// <summary>Copies the averaged values into destination (e.g. a model's parameters, for sampling).</summary>
    public void CopyTo(IReadOnlyList<Tensor> destination)
    {
        if (destination.Count != _shadow.Length) throw new ArgumentException($"Ema.CopyTo: {destination.Count} tensors for {_shadow.Length} averaged parameters");
        for (int i = 0; i < _shadow.Length; i++)
        {
            if (!ShapeUtil.Equal(destination[i].ShapeSpan, _shadow[i].ShapeSpan))
                throw new ArgumentException($"Ema.CopyTo: tensor {i} is {ShapeUtil.Format(destination[i].ShapeSpan)}, the average is {ShapeUtil.Format(_shadow[i].ShapeSpan)}");
            _shadow[i].Data.CopyTo(destination[i].Data);
        }
    }

    /// <summary>The rate and a copy of the averaged values, for checkpoints.</summary>
    public EmaState ExportState()
    {
        var values = new float[_shadow.Length][];
        for (int i = 0; i < values.Length; i++) values[i] = _shadow[i].ToArray();
        return new EmaState(Rate, values);
    }

    /// <summary>Restores averaged values from <see cref="ExportState"/>; throws <see cref="ArgumentException"/> when
    /// the rate, the parameter count or a parameter's size differs.</summary>
    public void ImportState(EmaState state)
    {
        if (state.Rate != Rate) throw new ArgumentException($"Ema: state has rate {state.Rate}, this average uses {Rate}");
        if (state.Values.Length != _shadow.Length) throw new ArgumentException($"Ema: state has {state.Values.Length} arrays for {_shadow.Length} parameters");
        for (int i = 0; i < _shadow.Length; i++)
            if (state.Values[i].Length != _shadow[i].Count)
                throw new ArgumentException($"Ema: state of parameter {i} has {state.Values[i].Length} values for shape {ShapeUtil.Format(_shadow[i].ShapeSpan)}");
        for (int i = 0; i < _shadow.Length; i++) state.Values[i].CopyTo(_shadow[i].Data);
    }
}

// Modules with explicitly named parameters and children (registered by their reference-checkpoint names, e.g.
// "input_blocks.1.0.in_layers.2"), train/eval mode, state dicts, and packing of every parameter and gradient
// into one flat buffer (llm.c), so zero-grad, the optimizer and checkpoints each run over one span.
namespace DiffuSharp.NN;

/// <summary>A layer or model: parameters and child modules registered under their reference checkpoint names (e.g.
/// "input_blocks.1.0.in_layers.2"), train/eval mode, state dicts, and a flat buffer of every parameter and gradient for
/// the optimizer.</summary>
public abstract class Module
{
    readonly List<(string Name, Module Child)> _children = [];
    readonly List<(string Name, Tensor Param)> _params = [];

    /// <summary>True in training mode (dropout active); see <see cref="Train"/> and <see cref="Eval"/>.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Registers <paramref name="child"/> under <paramref name="name"/> (the prefix of its parameters' names)
    /// and returns it; throws when the name is taken.</summary>
    protected T Register<T>(string name, T child) where T : Module
    {
        if (_children.Any(c => c.Name == name) || _params.Any(p => p.Name == name))
            throw new InvalidOperationException($"{GetType().Name}: '{name}' is registered twice");
        _children.Add((name, child));
        return child;
    }

    /// <summary>Registers a leaf tensor as a trainable parameter.</summary>
    protected Tensor Parameter(string name, Tensor value)
    {
        if (_children.Any(c => c.Name == name) || _params.Any(p => p.Name == name))
            throw new InvalidOperationException($"{GetType().Name}: '{name}' is registered twice");
        value.RequireGrad();
        TensorScope.Persist(value);                      // a parameter outlives any scope it was made in
        _params.Add((name, value));
        return value;
    }

    /// <summary>Every parameter with its dotted path, children in registration order (as a PyTorch state dict).</summary>
    public IEnumerable<(string Name, Tensor Param)> NamedParameters(string prefix = "")
    {
        foreach (var (name, p) in _params) yield return (prefix + name, p);
        foreach (var (name, child) in _children)
            foreach (var item in child.NamedParameters(prefix + name + ".")) yield return item;
    }

    /// <summary>Every parameter, in <see cref="NamedParameters"/> order.</summary>
    public IReadOnlyList<Tensor> Parameters() => NamedParameters().Select(p => p.Param).ToList();

    /// <summary>The total number of parameter elements.</summary>
    public long ParameterCount() => NamedParameters().Sum(p => (long)p.Param.Count);

    /// <summary>Sets training mode (dropout active) on this module and every child; false is
    /// <see cref="Eval"/>.</summary>
    public void Train(bool on = true)
    {
        Training = on;
        foreach (var (_, child) in _children) child.Train(on);
    }

    /// <summary>Sets evaluation mode (dropout off) on this module and every child.</summary>
    public void Eval() => Train(false);

    /// <summary>Rewrites the weight of every <see cref="Linear"/> layer in this module into the layout its forward
    /// without gradients runs fastest from (<see cref="Linear.PackWeightForInference"/>: same results, no extra memory, put
    /// back on any other read). For a model loaded to run, not to train. Returns how many layers were packed.</summary>
    public int PackForInference()
    {
        int packed = this is Linear linear && linear.PackWeightForInference() ? 1 : 0;
        foreach (var (_, child) in _children) packed += child.PackForInference();
        return packed;
    }

    /// <summary>Copies values in by name. Every parameter must be present with the same shape; extra names are an error
    /// unless <paramref name="strict"/> is false.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, (int[] Shape, float[] Data)> state, bool strict = true, string source = "state dict")
    {
        var mine = NamedParameters().ToDictionary(p => p.Name, p => p.Param);
        var missing = mine.Keys.Where(k => !state.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{source} lacks {missing.Count} parameter(s), e.g. '{missing[0]}'");
        if (strict)
        {
            var extra = state.Keys.Where(k => !mine.ContainsKey(k)).ToList();
            if (extra.Count > 0) throw new InvalidDataException($"{source} has {extra.Count} unexpected tensor(s), e.g. '{extra[0]}'");
        }
        foreach (var (name, p) in mine)
        {
            var (shape, data) = state[name];
            if (!ShapeUtil.Equal(shape, p.ShapeSpan))
                throw new InvalidDataException($"{source}: '{name}' has shape {ShapeUtil.Format(shape)}, the model expects {ShapeUtil.Format(p.ShapeSpan)}");
            data.AsSpan().CopyTo(p.Data);
        }
    }

    /// <summary>name → (shape, copy of the values), in parameter order.</summary>
    public Dictionary<string, (int[] Shape, float[] Data)> StateDict()
        => NamedParameters().ToDictionary(p => p.Name, p => (p.Param.Shape, p.Param.ToArray()));

    /// <summary>Clears every parameter's gradient (zeros the flat gradient buffer when the parameters are
    /// packed).</summary>
    public void ZeroGrad()
    {
        if (_flat is not null) { Array.Clear(_flat.Grads); return; }
        foreach (var p in Parameters()) p.Grad = null;
    }

    FlatParameters? _flat;

    /// <summary>The flat buffers, after <see cref="PackParameters"/>.</summary>
    public FlatParameters? Flat => _flat;

    /// <summary>Moves every parameter and its gradient into one contiguous buffer each (parameters become views).</summary>
    public FlatParameters PackParameters()
    {
        if (_flat is not null) return _flat;
        var ps = Parameters();
        long total = ps.Sum(p => (long)p.Count);
        if (total > Array.MaxLength) throw new InvalidOperationException($"{total} parameters do not fit one buffer");
        var values = new float[total];
        var grads = new float[total];
        int at = 0;
        foreach (var p in ps)
        {
            var src = p.Contiguous().Data;
            src.CopyTo(values.AsSpan(at));
            p.Storage = values;
            p.Offset = at;
            p.Grad = Tensor.OverArray(grads, at, p.Shape, ShapeUtil.ContiguousStrides(p.ShapeSpan));
            at += p.Count;
        }
        _flat = new FlatParameters(values, grads, ps);
        return _flat;
    }
}

/// <summary>All parameters of a module in one buffer, and their gradients in another, same order.</summary>
public sealed record FlatParameters(float[] Values, float[] Grads, IReadOnlyList<Tensor> Parameters);

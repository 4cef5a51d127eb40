// CLIP's text encoder as transformers' CLIPTextModel (models/clip/modeling_clip.py, transformers 4.39; Radford et al.
// 2021), with its parameter names ("text_model.embeddings.token_embedding.weight", "text_model.encoder.layers.N.
// self_attn.q_proj.weight", "text_model.final_layer_norm.bias", …) so a `model.safetensors` saved by transformers loads
// unchanged. Token + learnt position embeddings, N causal pre-norm layers, a final LayerNorm; the pooled output is
// the final state at the end-of-text token: argmax of the ids when eos_token_id is 2 (configs saved before
// transformers PR #24773, as SD 1.x's), else the first position holding eos_token_id. Every hidden state is returned
// (embeddings, then after each layer, before the final norm) for "clip skip". No attention_mask: Stable Diffusion's
// pipelines pass none (padding is hidden by the causal mask from every position before it).
using DiffuSharp.IO;

namespace DiffuSharp.NN.Clip;

/// <summary>The outputs of <see cref="ClipTextModel.Forward"/>.</summary>
/// <param name="LastHiddenState">(B, L, C): the last layer's output after final_layer_norm</param>
/// <param name="PoolerOutput">(B, C): LastHiddenState at each sequence's end-of-text token</param>
/// <param name="HiddenStates">num_hidden_layers + 1 tensors (B, L, C): the embeddings, then each layer's output
/// (without the final norm), as transformers' output_hidden_states</param>
public sealed record ClipTextOutput(Tensor LastHiddenState, Tensor PoolerOutput, IReadOnlyList<Tensor> HiddenStates);

/// <summary>transformers' CLIPTextModel: token ids (B, L) → hidden states (B, L, hidden_size).</summary>
public sealed class ClipTextModel : Module
{
    readonly ClipTextTransformer _textModel;

    /// <summary>The configuration the model was built from (transformers' CLIPTextConfig keys).</summary>
    public ClipTextConfig Config { get; }

    /// <summary>A model with PyTorch-style random initial weights drawn from rng, or zeros when rng is null (load weights
    /// with <see cref="ModuleLoading.LoadFrom"/> or use <see cref="FromFolder"/>).</summary>
    public ClipTextModel(ClipTextConfig config, Rng? rng)
    {
        Config = config.Validate();
        _textModel = Register("text_model", new ClipTextTransformer(config, rng));
    }

    /// <summary>Builds the model from a transformers folder: `config.json` and `model.safetensors` (F32, F16 or BF16).</summary>
    public static ClipTextModel FromFolder(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"text encoder folder not found: {folder}");
        var config = ClipTextConfig.Load(Path.Combine(folder, "config.json"));
        string weights = Path.Combine(folder, "model.safetensors");
        if (!File.Exists(weights))
        {
            var pickle = new[] { "pytorch_model.bin", "model.ckpt" }.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);
            if (pickle is not null) PickleRefusal.ThrowIfPickle(pickle);
            throw new FileNotFoundException($"text encoder weights not found: {weights}", weights);
        }
        return FromSource(config, SafeTensorsSource.Open(weights));
    }

    /// <summary>Builds the model from a config and a tensor source with transformers' names.</summary>
    public static ClipTextModel FromSource(ClipTextConfig config, ITensorSource source)
    {
        var model = new ClipTextModel(config, rng: null);          // every parameter is overwritten by the load
        model.LoadFrom(source, IsIgnorable);
        model.Eval();
        return model;
    }

    /// <summary>Tensors a saved CLIPTextModel may hold besides parameters: the position_ids buffer.</summary>
    public static bool IsIgnorable(string name) => name == "text_model.embeddings.position_ids";

    /// <summary>inputIds: (B, L) row-major token ids, L ≤ max_position_embeddings.</summary>
    public ClipTextOutput Forward(int[] inputIds, int batch) => _textModel.Forward(inputIds, batch);

    /// <summary>final_layer_norm alone: for "clip skip", apply it to <c>HiddenStates[^(k + 1)]</c> as diffusers does.</summary>
    public Tensor FinalLayerNorm(Tensor hidden) => _textModel.FinalNorm.Forward(hidden);

    /// <summary>The prompt embeddings diffusers' encode_prompt gives the UNet: last_hidden_state, or with clip_skip k > 0
    /// final_layer_norm(hidden_states[−(k + 1)]), the output of the layer k before the last.</summary>
    /// <param name="inputIds">(B, L) row-major token ids</param>
    /// <returns>(B, L, hidden_size)</returns>
    public Tensor EncodePrompt(int[] inputIds, int batch, int clipSkip = 0)
    {
        if (clipSkip < 0 || clipSkip > Config.NumHiddenLayers)
            throw new ArgumentException($"clip skip must be between 0 and num_hidden_layers ({Config.NumHiddenLayers}), got {clipSkip}");
        var y = Forward(inputIds, batch);
        return clipSkip == 0 ? y.LastHiddenState : FinalLayerNorm(y.HiddenStates[^(clipSkip + 1)]);
    }
}

/// <summary>CLIPTextTransformer: embeddings, encoder layers, final LayerNorm, pooling.</summary>
public sealed class ClipTextTransformer : Module
{
    readonly ClipTextConfig _config;
    readonly ClipTextEmbeddings _embeddings;
    readonly ClipEncoderLayer[] _layers;

    internal LayerNorm FinalNorm { get; }

    /// <summary>The text transformer (transformers' CLIPTextTransformer, "text_model") of <paramref name="config"/>'s
    /// sizes; weights drawn from <paramref name="rng"/>, or zero when it is null.</summary>
    public ClipTextTransformer(ClipTextConfig config, Rng? rng)
    {
        _config = config;
        _embeddings = Register("embeddings", new ClipTextEmbeddings(config, rng));
        var encoder = Register("encoder", new ClipEncoder());
        _layers = new ClipEncoderLayer[config.NumHiddenLayers];
        for (int i = 0; i < _layers.Length; i++) _layers[i] = encoder.Add(new ClipEncoderLayer(config, rng));
        FinalNorm = Register("final_layer_norm", new LayerNorm(config.HiddenSize, (float)config.LayerNormEps));
    }

    /// <summary>inputIds: (B, L) row-major.</summary>
    public ClipTextOutput Forward(int[] inputIds, int batch)
    {
        if (batch <= 0 || inputIds.Length % batch != 0 || inputIds.Length == 0)
            throw new ArgumentException($"CLIPTextModel: {inputIds.Length} ids do not form a batch of {batch} equal sequences");
        int l = inputIds.Length / batch;
        var h = _embeddings.Forward(inputIds, batch, l);                          // (B, L, C)
        var hidden = new List<Tensor>(_layers.Length + 1) { h };
        foreach (var layer in _layers)
        {
            h = layer.Forward(h, causal: true);
            hidden.Add(h);
        }
        var last = FinalNorm.Forward(h);                                         // (B, L, C)
        var rows = new int[batch];
        for (int b = 0; b < batch; b++) rows[b] = b * l + EosPosition(inputIds.AsSpan(b * l, l));
        var pooled = last.Reshape(batch * l, -1).IndexSelect(0, rows);          // (B, C)
        return new ClipTextOutput(last, pooled, hidden);
    }

    /// <summary>transformers 4.39's rule: argmax of the ids (the first largest) when eos_token_id is 2, else the first
    /// position of eos_token_id (0 when there is none, as argmax of all zeros).</summary>
    int EosPosition(ReadOnlySpan<int> ids)
    {
        int at = 0;
        if (_config.EosTokenId == 2)
        {
            for (int i = 1; i < ids.Length; i++) if (ids[i] > ids[at]) at = i;
            return at;
        }
        int first = ids.IndexOf(_config.EosTokenId);
        return first < 0 ? 0 : first;
    }
}

/// <summary>CLIPTextEmbeddings: token_embedding (vocab, C) + position_embedding (max_positions, C).</summary>
public sealed class ClipTextEmbeddings : Module
{
    readonly Embedding _token, _position;
    readonly int _vocab, _maxPositions;

    /// <summary>Token and position embeddings of <paramref name="config"/>'s sizes; drawn N(0, 1) from
    /// <paramref name="rng"/>, or zero when it is null.</summary>
    public ClipTextEmbeddings(ClipTextConfig config, Rng? rng)
    {
        (_vocab, _maxPositions) = (config.VocabSize, config.MaxPositionEmbeddings);
        _token = Register("token_embedding", new Embedding(config.VocabSize, config.HiddenSize, rng));
        _position = Register("position_embedding", new Embedding(config.MaxPositionEmbeddings, config.HiddenSize, rng));
    }

    /// <summary>ids (B, L) row-major → (B, L, C)</summary>
    public Tensor Forward(int[] ids, int batch, int length)
    {
        if (length > _maxPositions)
            throw new ArgumentException($"CLIPTextModel: sequence length {length} exceeds max_position_embeddings {_maxPositions}");
        foreach (int id in ids)
            if ((uint)id >= (uint)_vocab) throw new ArgumentException($"CLIPTextModel: token id {id} is outside the vocabulary of {_vocab}");
        var tokens = _token.Forward(ids).Reshape(batch, length, -1);              // (B, L, C)
        var positions = _position.Forward(Enumerable.Range(0, length).ToArray()); // (L, C), broadcast over B
        return tokens + positions;
    }
}

/// <summary>CLIPEncoder: the layers, registered as "layers.0", "layers.1", ….</summary>
public sealed class ClipEncoder : Module
{
    int _count;

    internal ClipEncoderLayer Add(ClipEncoderLayer layer) => Register($"layers.{_count++}", layer);
}

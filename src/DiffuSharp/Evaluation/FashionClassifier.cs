// A small CNN for 28×28 gray images (Fashion-MNIST), built from the engine's ops and trained with its own AdamW.
// Its 128-d penultimate activations are the feature space of the Fréchet distance (the role Inception-v3's pool
// features play in FID, Heusel et al. 2017), and its logits judge class-conditional samples.
// On disk: <folder>/classifier.safetensors (float32, the parameter names below) and <folder>/classifier.json
// (the architecture and how it was trained).
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.IO;
using DiffuSharp.Models;
using DiffuSharp.NN;

namespace DiffuSharp.Evaluation;

/// <summary>Architecture of <see cref="FashionClassifier"/>: three 3×3 conv stages, then two linear layers.</summary>
public sealed record ClassifierConfig(
    int ImageSize = 28,
    int InChannels = 1,
    int Channels1 = 32,          // conv1 at 28×28, then 2×2 average pool
    int Channels2 = 64,          // conv2 at 14×14, then 2×2 average pool
    int Channels3 = 64,          // conv3 at 7×7 with stride 2 → 4×4
    int FeatureDim = 128,        // penultimate features (Fréchet distance space)
    int NumClasses = 10)
{
    /// <summary>Side of conv3's output: ⌈(size/4)/2⌉ (stride 2, padding 1).</summary>
    public int FinalSide => (ImageSize / 4 + 1) / 2;

    /// <summary>Throws <see cref="ArgumentException"/> unless ImageSize is a positive multiple of 4, every channel
    /// count is positive and NumClasses is at least 2.</summary>
    public void Validate()
    {
        if (ImageSize < 4 || ImageSize % 4 != 0) throw new ArgumentException($"classifier image_size must be a positive multiple of 4, got {ImageSize}");
        if (InChannels < 1 || Channels1 < 1 || Channels2 < 1 || Channels3 < 1 || FeatureDim < 1 || NumClasses < 2)
            throw new ArgumentException("classifier channel counts must be positive and num_classes at least 2");
    }
}

/// <summary>
/// conv3×3(C→32) SiLU, avgpool ↓2, conv3×3(32→64) SiLU, avgpool ↓2, conv3×3/2(64→64) SiLU, flatten,
/// linear(64·4·4→128) SiLU = features, linear(128→10) = logits.
/// </summary>
public sealed class FashionClassifier : Module
{
    /// <summary>The weights' file name in a classifier folder (float32 safetensors).</summary>
    public const string WeightsFile = "classifier.safetensors";
    /// <summary>The architecture and training record's file name in a classifier folder (JSON).</summary>
    public const string ConfigFile = "classifier.json";

    readonly Conv2d _conv1, _conv2, _conv3;
    readonly Linear _fc1, _fc2;

    /// <summary>The architecture this classifier was built with.</summary>
    public ClassifierConfig Config { get; }

    /// <summary>A classifier of <paramref name="config"/>'s architecture with fresh weights drawn from
    /// <paramref name="rng"/>; throws when the config is invalid.</summary>
    public FashionClassifier(ClassifierConfig config, Rng rng)
    {
        config.Validate();
        Config = config;
        _conv1 = Register("conv1", new Conv2d(config.InChannels, config.Channels1, 3, rng, padding: 1));
        _conv2 = Register("conv2", new Conv2d(config.Channels1, config.Channels2, 3, rng, padding: 1));
        _conv3 = Register("conv3", new Conv2d(config.Channels2, config.Channels3, 3, rng, stride: 2, padding: 1));
        int side = config.FinalSide;
        _fc1 = Register("fc1", new Linear(config.Channels3 * side * side, config.FeatureDim, rng));
        _fc2 = Register("fc2", new Linear(config.FeatureDim, config.NumClasses, rng));
    }

    /// <summary>x: (B, C, S, S) in [-1, 1] → (logits (B, classes), features (B, FeatureDim)).</summary>
    public (Tensor Logits, Tensor Features) Forward(Tensor x)
    {
        int s = Config.ImageSize;
        if (x.Rank != 4 || x.Dim(1) != Config.InChannels || x.Dim(2) != s || x.Dim(3) != s)
            throw new ArgumentException($"classifier expects (B, {Config.InChannels}, {s}, {s}), got {ShapeUtil.Format(x.ShapeSpan)}");
        var h = _conv1.Forward(x).Silu().AvgPool2x2();                  // (B, 32, S/2, S/2)
        h = _conv2.Forward(h).Silu().AvgPool2x2();                      // (B, 64, S/4, S/4)
        h = _conv3.Forward(h).Silu();                                   // (B, 64, ⌈S/8⌉, ⌈S/8⌉)
        var features = _fc1.Forward(h.Reshape(x.Dim(0), -1)).Silu();    // (B, 128)
        return (_fc2.Forward(features), features);                      // (B, 10)
    }

    /// <summary>Mean cross-entropy of logits (B, K) against labels: −(1/B) Σ_b log softmax(logits_b)[y_b].</summary>
    public static Tensor CrossEntropy(Tensor logits, int[] labels)
    {
        int b = logits.Dim(0), k = logits.Dim(1);
        if (labels.Length != b) throw new ArgumentException($"CrossEntropy: {labels.Length} labels for {b} rows of logits");
        var oneHot = new float[b * k];
        for (int i = 0; i < b; i++)
        {
            if ((uint)labels[i] >= (uint)k) throw new ArgumentException($"CrossEntropy: label {labels[i]} is outside [0, {k})");
            oneHot[i * k + labels[i]] = 1f;
        }
        return (logits.LogSoftmax(1) * Tensor.Wrap(oneHot, b, k)).Sum() * (-1.0 / b);
    }

    /// <summary>Runs the classifier in eval mode over images (N, C, S, S), in batches, without a graph:
    /// returns the predicted labels (N) and the features (N × FeatureDim, row-major).</summary>
    public (int[] Predictions, float[] Features) Predict(ReadOnlySpan<float> images, int count, int batch = 256)
    {
        int c = Config.InChannels, s = Config.ImageSize, len = c * s * s, d = Config.FeatureDim, k = Config.NumClasses;
        if (images.Length != count * len) throw new ArgumentException($"classifier: {images.Length} floats are not {count} images of ({c}, {s}, {s})");
        bool wasTraining = Training;
        Eval();
        var preds = new int[count];
        var feats = new float[count * d];
        using (Tensor.NoGrad())
            for (int start = 0; start < count; start += batch)
            {
                int n = Math.Min(batch, count - start);
                using var scope = TensorScope.Begin();               // each batch's activations go back to the pool
                var (logits, f) = Forward(Tensor.FromSpan(images.Slice(start * len, n * len), n, c, s, s));
                f.ToArray().CopyTo(feats.AsSpan(start * d));
                var l = logits.ToArray();
                for (int i = 0; i < n; i++)
                {
                    int best = 0;
                    for (int j = 1; j < k; j++) if (l[i * k + j] > l[i * k + best]) best = j;
                    preds[start + i] = best;
                }
            }
        Train(wasTraining);
        return (preds, feats);
    }

    /// <summary>Writes classifier.safetensors and classifier.json (the config plus <paramref name="info"/>) into folder.</summary>
    public void Save(string folder, JsonObject? info = null)
    {
        Directory.CreateDirectory(folder);
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFile), ModelFolder.Weights(this));
        var json = new JsonObject
        {
            ["image_size"] = Config.ImageSize, ["in_channels"] = Config.InChannels, ["channels1"] = Config.Channels1,
            ["channels2"] = Config.Channels2, ["channels3"] = Config.Channels3, ["feature_dim"] = Config.FeatureDim,
            ["num_classes"] = Config.NumClasses,
        };
        if (info is not null)
            foreach (var (key, value) in info) json[key] = value?.DeepClone();
        AtomicFile.WriteJson(Path.Combine(folder, ConfigFile), json);
    }

    /// <summary>Loads a classifier folder; a missing or corrupt file is an exception that names it.</summary>
    public static FashionClassifier Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"classifier folder not found: {folder}");
        string configPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"classifier config not found: {configPath}", configPath);
        JsonObject obj;
        try { obj = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new InvalidDataException($"{configPath}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message})"); }
        ClassifierConfig config;
        try
        {
            var d = new ClassifierConfig();
            config = new ClassifierConfig(Int("image_size", d.ImageSize), Int("in_channels", d.InChannels), Int("channels1", d.Channels1),
                Int("channels2", d.Channels2), Int("channels3", d.Channels3), Int("feature_dim", d.FeatureDim), Int("num_classes", d.NumClasses));
            config.Validate();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{configPath}: {e.Message}");
        }
        var model = new FashionClassifier(config, new Rng(0));
        ModelFolder.LoadWeights(model, Path.Combine(folder, WeightsFile));
        model.Eval();
        return model;

        int Int(string key, int def) => obj[key] is null ? def : obj[key]!.GetValue<int>();
    }
}

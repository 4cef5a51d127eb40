// Captions for Fashion-MNIST, made from each image's label and its measured attributes (FashionAttributes), for
// training a text-conditioned model. A word is said only where it is true within the garment's own class: the
// thresholds are the class's terciles over the 60,000 training images, so "dark" means the darkest third of that
// class's images ("a dark sandal" and "a dark coat" are each dark for what they are), "light" the lightest third,
// and the middle third gets no word. Likewise "small"/"large" (silhouette area) and "plain"/"patterned" (texture).
// Each applicable word is kept with probability 0.8, so the model also sees every word on its own; the noun is the
// class name (60%) or one of its synonyms; one of five templates; 10% of captions are empty (for classifier-free
// guidance). Everything is drawn from an Rng seeded by (seed, epoch, image index), so a caption does not depend on
// the order in which images are visited. docs/captions.md lists the vocabulary and the thresholds.
using System.Globalization;
using System.Text.Json.Nodes;

namespace DiffuSharp.Data;

/// <summary>One class's tercile thresholds: a value below the first is "low" (dark, small, plain), at or above the
/// second "high" (light, large, patterned).</summary>
public sealed record AttributeThresholds(
    double DarkBelow, double LightFrom, double SmallBelow, double LargeFrom, double PlainBelow, double PatternedFrom);

/// <summary>A noun phrase for a class; plural ones ("trousers") take no article.</summary>
public sealed record GarmentNoun(string Text, bool Plural = false);

/// <summary>Caption drawing settings. EmptyProbability: the share of empty captions; WordProbability: the chance that each
/// applicable attribute word is said; NameProbability: the chance that the noun is the class name, not a synonym;
/// BareProbability: the chance that a non-empty caption says no attribute word at all, whatever the image (so that a
/// caption without attribute words stands for every garment of its class, not mostly the middle-tercile ones that
/// have no word to say; train-latent draws with 0.5).</summary>
public sealed record CaptionOptions(double EmptyProbability = 0.1, double WordProbability = 0.8, double NameProbability = 0.6, double BareProbability = 0)
{
    /// <summary>Throws ArgumentException naming the first probability outside [0, 1].</summary>
    public void Validate()
    {
        foreach (var (name, p) in new[] { ("empty", EmptyProbability), ("word", WordProbability), ("name", NameProbability), ("bare", BareProbability) })
            if (!(p >= 0 && p <= 1)) throw new ArgumentException($"the {name} caption probability must be in [0, 1], got {p}");
    }

    /// <summary>The settings as a checkpoint stores them: empty, word, name, bare.</summary>
    public JsonObject ToJson() => new() { ["empty"] = EmptyProbability, ["word"] = WordProbability, ["name"] = NameProbability, ["bare"] = BareProbability };

    /// <summary>Reads <see cref="ToJson"/>'s object; a missing or malformed key is an InvalidDataException naming <paramref name="source"/>.</summary>
    public static CaptionOptions FromJson(JsonObject o, string source)
    {
        try
        {
            var c = new CaptionOptions(o["empty"]!.GetValue<double>(), o["word"]!.GetValue<double>(), o["name"]!.GetValue<double>(), o["bare"]!.GetValue<double>());
            c.Validate();
            return c;
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"{source}: malformed caption settings ({e.Message})");
        }
    }
}

/// <summary>Captions for Fashion-MNIST images made from the label and measured attributes (brightness, size, texture
/// judged against the class's own terciles), drawn from an Rng seeded by (seed, epoch, image index); docs/captions.md
/// lists the vocabulary.</summary>
public static partial class FashionCaptions
{
    /// <summary>The class names captions use, label 0..9 (the dataset's, in the lower case prompts use).</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"];

    /// <summary>Per class: the name first, then its synonyms.</summary>
    public static IReadOnlyList<IReadOnlyList<GarmentNoun>> Nouns { get; } =
    [
        [new("t-shirt"), new("tee"), new("t-shirt top"), new("top")],
        [new("trouser"), new("trousers", true), new("pair of trousers"), new("pants", true)],
        [new("pullover"), new("sweater"), new("jumper")],
        [new("dress"), new("frock"), new("summer dress")],
        [new("coat"), new("jacket"), new("overcoat")],
        [new("sandal"), new("sandals", true), new("strappy sandal")],
        [new("shirt"), new("button-up shirt"), new("blouse")],
        [new("sneaker"), new("trainer"), new("running shoe")],
        [new("bag"), new("handbag"), new("purse")],
        [new("ankle boot"), new("boot"), new("bootie")],
    ];

    /// <summary>Sentence templates: {0} is the noun phrase with its article ("a dark sandal"), {1} without ("dark sandal").</summary>
    public static IReadOnlyList<string> Templates { get; } =
        ["a photo of {0}", "a picture of {0}", "{0}", "{1}", "a product photo of {0}"];

    /// <summary>The attribute words of an image: each null in the middle tercile of its class.</summary>
    public static (string? Size, string? Brightness, string? Texture) Words(FashionAttributes a, int label, IReadOnlyList<AttributeThresholds>? thresholds = null)
    {
        var t = (thresholds ?? Thresholds)[CheckLabel(label)];
        string? size = a.Size < t.SmallBelow ? "small" : a.Size >= t.LargeFrom ? "large" : null;
        string? brightness = a.Brightness < t.DarkBelow ? "dark" : a.Brightness >= t.LightFrom ? "light" : null;
        string? texture = a.Texture < t.PlainBelow ? "plain" : a.Texture >= t.PatternedFrom ? "patterned" : null;
        return (size, brightness, texture);
    }

    /// <summary>One caption for an image with this label and these attributes, drawn from <paramref name="rng"/>.</summary>
    public static string Caption(int label, FashionAttributes a, Rng rng, CaptionOptions? options = null, IReadOnlyList<AttributeThresholds>? thresholds = null)
    {
        options ??= new CaptionOptions();
        var (size, brightness, texture) = Words(a, label, thresholds);
        if (rng.NextDouble() < options.EmptyProbability) return "";
        var nouns = Nouns[label];
        var noun = rng.NextDouble() < options.NameProbability ? nouns[0] : nouns[1 + rng.NextInt(nouns.Count - 1)];
        var words = new List<string>(4);
        bool nameOnly = options.BareProbability > 0 && rng.NextDouble() < options.BareProbability;   // no draw at 0: older runs' captions stay the same
        if (!nameOnly)
            foreach (var w in new[] { size, brightness, texture })           // English order: size, colour, pattern
                if (rng.NextDouble() < options.WordProbability && w is not null) words.Add(w);
        words.Add(noun.Text);
        string bare = string.Join(' ', words);
        string template = Templates[rng.NextInt(Templates.Count)];
        return string.Format(CultureInfo.InvariantCulture, template, WithArticle(bare, noun.Plural), bare);
    }

    /// <summary>"a" or "an" before a singular phrase by its first letter; plural phrases stand alone.</summary>
    public static string WithArticle(string phrase, bool plural = false)
        => plural ? phrase : ("aeiou".Contains(phrase[0]) ? "an " : "a ") + phrase;

    /// <summary>Captions for every image of a labelled 28×28-style gray dataset, for one epoch (a new draw each epoch).</summary>
    public static string[] ForDataset(ImageDataset data, ulong seed, int epoch = 0, CaptionOptions? options = null, IReadOnlyList<AttributeThresholds>? thresholds = null)
        => ForDataset(Measure(data), data.Labels ?? throw new ArgumentException("FashionCaptions: the dataset has no labels"), seed, epoch, options, thresholds);

    /// <summary>Captions from measured attributes and labels (measure once with <see cref="Measure"/>, draw every epoch).</summary>
    public static string[] ForDataset(IReadOnlyList<FashionAttributes> attributes, IReadOnlyList<int> labels, ulong seed, int epoch = 0, CaptionOptions? options = null, IReadOnlyList<AttributeThresholds>? thresholds = null)
    {
        if (attributes.Count != labels.Count) throw new ArgumentException($"FashionCaptions: {attributes.Count} attribute sets but {labels.Count} labels");
        var captions = new string[labels.Count];
        for (int i = 0; i < captions.Length; i++)
            captions[i] = CaptionFor(i, labels[i], attributes[i], seed, epoch, options, thresholds);
        return captions;
    }

    /// <summary>The caption of image <paramref name="index"/> in epoch <paramref name="epoch"/>: the same whichever images are
    /// captioned before or after it.</summary>
    public static string CaptionFor(int index, int label, FashionAttributes a, ulong seed, int epoch = 0, CaptionOptions? options = null, IReadOnlyList<AttributeThresholds>? thresholds = null)
        => Caption(label, a, ImageRng(seed, epoch, index), options, thresholds);

    /// <summary>The attributes of every image (gray, one channel).</summary>
    public static FashionAttributes[] Measure(ImageDataset data)
    {
        if (data.Channels != 1) throw new ArgumentException($"FashionCaptions: expects gray images (1 channel), got {data.Channels}");
        var result = new FashionAttributes[data.Count];
        Parallel.For(0, data.Count, i => result[i] = FashionAttributes.Measure(data.Image(i), data.Width, data.Height));
        return result;
    }

    /// <summary>Each class's terciles of brightness, size and texture (value at ⌊n/3⌋ and ⌊2n/3⌋ of the sorted values).</summary>
    public static AttributeThresholds[] Fit(IReadOnlyList<FashionAttributes> attributes, IReadOnlyList<int> labels, int numClasses = 10)
    {
        var result = new AttributeThresholds[numClasses];
        for (int c = 0; c < numClasses; c++)
        {
            var idx = Enumerable.Range(0, labels.Count).Where(i => labels[i] == c).ToArray();
            if (idx.Length < 3) throw new ArgumentException($"FashionCaptions.Fit: class {c} has {idx.Length} images; terciles need at least 3");
            (double, double) Terciles(Func<FashionAttributes, double> f)
            {
                var v = idx.Select(i => f(attributes[i])).Order().ToArray();
                return (v[v.Length / 3], v[2 * v.Length / 3]);
            }
            var (d, l) = Terciles(a => a.Brightness);
            var (s, g) = Terciles(a => a.Size);
            var (p, q) = Terciles(a => a.Texture);
            result[c] = new AttributeThresholds(d, l, s, g, p, q);
        }
        return result;
    }

    static Rng ImageRng(ulong seed, int epoch, int index)
        => new(seed * 0x9E3779B97F4A7C15UL ^ ((ulong)(uint)epoch << 32 | (uint)index));

    static int CheckLabel(int label)
        => (uint)label < 10 ? label : throw new ArgumentOutOfRangeException(nameof(label), $"FashionCaptions: label must be 0..9, got {label}");
}

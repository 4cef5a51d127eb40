// model.json: the flags of improved-diffusion's model_and_diffusion_defaults() plus in_channels, channel_mult and
// num_classes. Missing keys take improved-diffusion's defaults; unknown keys, wrong types and impossible values are
// errors that name the key and the file.
// DiffuSharp's own keys (null_class, class_dropout_prob: classifier-free guidance, Ho & Salimans 2022; predict_v,
// snr_gamma, noise_offset: the objectives of diffusers' training scripts) are written only when they differ from
// their defaults, so a model that does not use them keeps a model.json improved-diffusion's scripts accept.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffuSharp.NN;

namespace DiffuSharp.Models;

/// <summary>
/// A model's flags, as model.json stores them: improved-diffusion's <c>model_and_diffusion_defaults()</c> (network and
/// diffusion; each property is the flag of the same name, e.g. <see cref="NumChannels"/> is <c>num_channels</c>) plus
/// <c>in_channels</c>, <c>channel_mult</c>, <c>num_classes</c> and DiffuSharp's objectives. Unset properties keep
/// improved-diffusion's defaults. <see cref="Presets"/> holds ready-made ones.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>image_size: the side of the square images in pixels (default 64).</summary>
    public int ImageSize { get; init; } = 64;
    /// <summary>num_channels: the UNet's base channel count, multiplied per level by channel_mult (default
    /// 128).</summary>
    public int NumChannels { get; init; } = 128;
    /// <summary>num_res_blocks: residual blocks per resolution level (default 2).</summary>
    public int NumResBlocks { get; init; } = 2;
    /// <summary>num_heads: attention heads in the down and middle blocks (default 4).</summary>
    public int NumHeads { get; init; } = 4;
    /// <summary>num_heads_upsample: attention heads in the up blocks; -1 (default) means num_heads.</summary>
    public int NumHeadsUpsample { get; init; } = -1;
    /// <summary>attention_resolutions: comma-separated pixel resolutions that get self-attention blocks (default
    /// "16,8"); each must divide image_size.</summary>
    public string AttentionResolutions { get; init; } = "16,8";   // pixel resolutions, e.g. "16,8"
    /// <summary>dropout: the dropout probability inside residual blocks, in [0, 1) (default 0).</summary>
    public double Dropout { get; init; }
    /// <summary>learn_sigma: the model also outputs its variance (2C channels), interpolated as iDDPM's learned
    /// range.</summary>
    public bool LearnSigma { get; init; }
    /// <summary>sigma_small: with a fixed variance, use β̃_t (fixed small) instead of β_t (fixed large).</summary>
    public bool SigmaSmall { get; init; }
    /// <summary>class_cond: the model takes class labels (label_emb).</summary>
    public bool ClassCond { get; init; }
    /// <summary>diffusion_steps: T, the number of training timesteps (default 1000).</summary>
    public int DiffusionSteps { get; init; } = 1000;
    /// <summary>noise_schedule: the β schedule, "linear" (default) or "cosine".</summary>
    public string NoiseSchedule { get; init; } = "linear";
    /// <summary>timestep_respacing: the sampling subset of the timesteps ("" = all, "ddimN", or section counts such as
    /// "10,15,20").</summary>
    public string TimestepRespacing { get; init; } = "";
    /// <summary>use_kl: train on the variational bound (rescaled KL) instead of the MSE.</summary>
    public bool UseKl { get; init; }
    /// <summary>predict_xstart: the model predicts x_0 instead of ε.</summary>
    public bool PredictXStart { get; init; }
    /// <summary>rescale_timesteps: pass t·1000/T to the model so timesteps always span DDPM's 0..1000 (default
    /// true).</summary>
    public bool RescaleTimesteps { get; init; } = true;
    /// <summary>rescale_learned_sigmas: with learn_sigma and the MSE loss, weight the VB term by T/1000 (iDDPM's hybrid
    /// loss; default true).</summary>
    public bool RescaleLearnedSigmas { get; init; } = true;
    /// <summary>use_checkpoint: gradient checkpointing; accepted for compatibility and has no effect in
    /// DiffuSharp.</summary>
    public bool UseCheckpoint { get; init; }                       // gradient checkpointing: accepted, has no effect here
    /// <summary>use_scale_shift_norm: the timestep embedding scales and shifts the group norm (FiLM) instead of being
    /// added (default true).</summary>
    public bool UseScaleShiftNorm { get; init; } = true;
    /// <summary>in_channels: channels of the images (3 for RGB, 1 for gray); the output has as many (twice with
    /// learn_sigma).</summary>
    public int InChannels { get; init; } = 3;
    /// <summary>channel_mult: comma-separated per-level multipliers of num_channels; null picks improved-diffusion's
    /// choice for the image size.</summary>
    public string? ChannelMult { get; init; }                      // null: improved-diffusion's choice for the image size
    /// <summary>num_classes: the class count of a class-conditional model; null means 1000 (improved-diffusion's
    /// NUM_CLASSES).</summary>
    public int? NumClasses { get; init; }                          // null: 1000 (improved-diffusion's NUM_CLASSES) when class_cond
    /// <summary>null_class: label_emb has an extra last row for "no class" (label = num_classes), for classifier-free
    /// guidance; needs class_cond.</summary>
    public bool NullClass { get; init; }                           // label_emb has a last row for "no class" (label = num_classes)
    /// <summary>class_dropout_prob: the probability in [0, 1) that training replaces a label by the null label; needs
    /// null_class.</summary>
    public double ClassDropoutProb { get; init; }                  // training replaces a label by the null label with this probability
    /// <summary>predict_v: the model predicts v = √ᾱ·ε − √(1 − ᾱ)·x_0 (Salimans &amp; Ho 2022); exclusive with
    /// predict_xstart.</summary>
    public bool PredictV { get; init; }                            // model predicts v = √ᾱ ε − √(1−ᾱ) x_0 (Salimans & Ho 2022)
    /// <summary>snr_gamma: min-SNR-γ loss weighting (Hang et al. 2023), typically 5; 0 (default) turns it
    /// off.</summary>
    public double SnrGamma { get; init; }                          // min-SNR-γ loss weighting (Hang et al. 2023); 0 = off
    /// <summary>noise_offset: training noise gets offset·N(0, 1) added per (sample, channel), constant over the image;
    /// 0 (default) turns it off.</summary>
    public double NoiseOffset { get; init; }                       // training noise + offset·N(0, 1) per (B, C, 1, 1); 0 = off

    static readonly string[] Keys =
    [
        "image_size", "num_channels", "num_res_blocks", "num_heads", "num_heads_upsample", "attention_resolutions",
        "dropout", "learn_sigma", "sigma_small", "class_cond", "diffusion_steps", "noise_schedule", "timestep_respacing",
        "use_kl", "predict_xstart", "rescale_timesteps", "rescale_learned_sigmas", "use_checkpoint", "use_scale_shift_norm",
        "in_channels", "channel_mult", "num_classes",
        "null_class", "class_dropout_prob", "predict_v", "snr_gamma", "noise_offset",
    ];

    /// <summary>The label that means "no class" (classifier-free guidance), or null when the model has none.</summary>
    public int? NullLabel => NullClass && ClassCount is int k ? k : null;

    /// <summary>channel_mult as integers: explicit, or as improved-diffusion's create_model picks it (28 → 1,2,2).</summary>
    public int[] ChannelMultiplier()
    {
        if (ChannelMult is not null) return ParseInts(ChannelMult, "channel_mult");
        return ImageSize switch
        {
            256 => [1, 1, 2, 2, 4, 4],
            64 => [1, 2, 3, 4],
            32 => [1, 2, 2, 2],
            28 => [1, 2, 2],
            _ => throw new ArgumentException($"no default channel_mult for image_size {ImageSize}; set channel_mult (e.g. \"1,2,2\")"),
        };
    }

    /// <summary>The number of label_emb classes (num_classes, or 1000 when unset) for a class-conditional model; null
    /// when class_cond is off.</summary>
    public int? ClassCount => ClassCond ? NumClasses ?? 1000 : null;

    /// <summary>The UNet architecture these flags describe (improved-diffusion's create_model); throws
    /// <see cref="ArgumentException"/> when an attention resolution does not divide image_size or channel_mult cannot be
    /// parsed.</summary>
    public UNetConfig ToUNetConfig()
    {
        var res = ParseInts(AttentionResolutions, "attention_resolutions");
        foreach (int r in res)
            if (r <= 0 || ImageSize % r != 0) throw new ArgumentException($"attention_resolutions: {r} does not divide image_size {ImageSize}");
        var cfg = new UNetConfig(
            InChannels: InChannels,
            ModelChannels: NumChannels,
            OutChannels: LearnSigma ? 2 * InChannels : InChannels,
            NumResBlocks: NumResBlocks,
            AttentionResolutions: res.Select(r => ImageSize / r).ToArray(),
            Dropout: (float)Dropout,
            ChannelMult: ChannelMultiplier(),
            NumClasses: ClassCount,
            NumHeads: NumHeads,
            NumHeadsUpsample: NumHeadsUpsample,
            UseScaleShiftNorm: UseScaleShiftNorm,
            NullClass: NullClass);
        cfg.Validate();
        cfg.ValidateImageSize(ImageSize);
        return cfg;
    }

    static int[] ParseInts(string s, string key)
    {
        if (string.IsNullOrWhiteSpace(s)) return [];
        try { return s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray(); }
        catch (Exception e) when (e is FormatException or OverflowException) { throw new ArgumentException($"{key}: expected integers separated by commas, got \"{s}\""); }
    }

    /// <summary>Reads a model.json; throws <see cref="FileNotFoundException"/> when it is missing and
    /// <see cref="InvalidDataException"/> naming the file and key for invalid JSON, unknown keys, wrong types or impossible
    /// values.</summary>
    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"model config not found: {path}", path);
        JsonNode? root;
        root = DiffuSharp.IO.StrictJson.ParseFile(path);
        if (root is not JsonObject obj) throw new InvalidDataException($"{path}: expected a JSON object of model flags");
        return FromJson(obj, path);
    }

    /// <summary>The flags of a parsed model.json object; missing keys take improved-diffusion's defaults. Throws
    /// <see cref="InvalidDataException"/> starting with <paramref name="source"/> for unknown keys, wrong types or
    /// impossible values.</summary>
    public static ModelConfig FromJson(JsonObject obj, string source)
    {
        foreach (var (key, _) in obj)
            if (!Keys.Contains(key)) throw new InvalidDataException($"{source}: unknown key {JsonValue.Create(key).ToJsonString()}");
        var c = new ModelConfig();
        try
        {
            c = c with
            {
                ImageSize = Int(obj, "image_size", c.ImageSize),
                NumChannels = Int(obj, "num_channels", c.NumChannels),
                NumResBlocks = Int(obj, "num_res_blocks", c.NumResBlocks),
                NumHeads = Int(obj, "num_heads", c.NumHeads),
                NumHeadsUpsample = Int(obj, "num_heads_upsample", c.NumHeadsUpsample),
                AttentionResolutions = Str(obj, "attention_resolutions", c.AttentionResolutions),
                Dropout = Dbl(obj, "dropout", c.Dropout),
                LearnSigma = Bool(obj, "learn_sigma", c.LearnSigma),
                SigmaSmall = Bool(obj, "sigma_small", c.SigmaSmall),
                ClassCond = Bool(obj, "class_cond", c.ClassCond),
                DiffusionSteps = Int(obj, "diffusion_steps", c.DiffusionSteps),
                NoiseSchedule = Str(obj, "noise_schedule", c.NoiseSchedule),
                TimestepRespacing = Str(obj, "timestep_respacing", c.TimestepRespacing),
                UseKl = Bool(obj, "use_kl", c.UseKl),
                PredictXStart = Bool(obj, "predict_xstart", c.PredictXStart),
                RescaleTimesteps = Bool(obj, "rescale_timesteps", c.RescaleTimesteps),
                RescaleLearnedSigmas = Bool(obj, "rescale_learned_sigmas", c.RescaleLearnedSigmas),
                UseCheckpoint = Bool(obj, "use_checkpoint", c.UseCheckpoint),
                UseScaleShiftNorm = Bool(obj, "use_scale_shift_norm", c.UseScaleShiftNorm),
                InChannels = Int(obj, "in_channels", c.InChannels),
                ChannelMult = obj.ContainsKey("channel_mult") ? Str(obj, "channel_mult", "") : null,
                NumClasses = obj["num_classes"] is null ? null : Int(obj, "num_classes", 0),
                NullClass = Bool(obj, "null_class", c.NullClass),
                ClassDropoutProb = Dbl(obj, "class_dropout_prob", c.ClassDropoutProb),
                PredictV = Bool(obj, "predict_v", c.PredictV),
                SnrGamma = Dbl(obj, "snr_gamma", c.SnrGamma),
                NoiseOffset = Dbl(obj, "noise_offset", c.NoiseOffset),
            };
            c.ValidateObjectives();
            if (c.ImageSize < 1) throw new ArgumentException($"image_size must be positive, got {c.ImageSize}");
            if (c.DiffusionSteps < 1) throw new ArgumentException($"diffusion_steps must be positive, got {c.DiffusionSteps}");
            if (c.NoiseSchedule is not ("linear" or "cosine")) throw new ArgumentException($"\"noise_schedule\" must be \"linear\" or \"cosine\", got \"{c.NoiseSchedule}\"");
            c.ToUNetConfig();
        }
        catch (ArgumentException e) { throw new InvalidDataException($"{source}: {e.Message}"); }
        return c;
    }

    /// <summary>The DiffuSharp keys: ranges and the combinations they need.</summary>
    void ValidateObjectives()
    {
        if (NullClass && !ClassCond) throw new ArgumentException("null_class needs a class-conditional model (class_cond true)");
        if (!(ClassDropoutProb >= 0 && ClassDropoutProb < 1)) throw new ArgumentException($"class_dropout_prob must be in [0, 1), got {ClassDropoutProb}");
        if (ClassDropoutProb > 0 && !NullClass) throw new ArgumentException("class_dropout_prob > 0 needs null_class true (a label_emb row for the null label)");
        if (PredictV && PredictXStart) throw new ArgumentException("predict_v and predict_xstart are exclusive: the model predicts one thing");
        if (!(SnrGamma >= 0) || double.IsInfinity(SnrGamma)) throw new ArgumentException($"snr_gamma must be a non-negative number (0 = off), got {SnrGamma}");
        if (!(NoiseOffset >= 0) || double.IsInfinity(NoiseOffset)) throw new ArgumentException($"noise_offset must be a non-negative number (0 = off), got {NoiseOffset}");
    }

    /// <summary>The flags as a model.json object: every improved-diffusion key, and DiffuSharp's own keys only when
    /// they differ from their defaults.</summary>
    public JsonObject ToJson()
    {
        var o = BaseJson();
        if (NullClass) o["null_class"] = true;
        if (ClassDropoutProb != 0) o["class_dropout_prob"] = ClassDropoutProb;
        if (PredictV) o["predict_v"] = true;
        if (SnrGamma != 0) o["snr_gamma"] = SnrGamma;
        if (NoiseOffset != 0) o["noise_offset"] = NoiseOffset;
        return o;
    }

    JsonObject BaseJson() => new()
    {
        ["image_size"] = ImageSize, ["num_channels"] = NumChannels, ["num_res_blocks"] = NumResBlocks,
        ["num_heads"] = NumHeads, ["num_heads_upsample"] = NumHeadsUpsample, ["attention_resolutions"] = AttentionResolutions,
        ["dropout"] = Dropout, ["learn_sigma"] = LearnSigma, ["sigma_small"] = SigmaSmall, ["class_cond"] = ClassCond,
        ["diffusion_steps"] = DiffusionSteps, ["noise_schedule"] = NoiseSchedule, ["timestep_respacing"] = TimestepRespacing,
        ["use_kl"] = UseKl, ["predict_xstart"] = PredictXStart, ["rescale_timesteps"] = RescaleTimesteps,
        ["rescale_learned_sigmas"] = RescaleLearnedSigmas, ["use_checkpoint"] = UseCheckpoint,
        ["use_scale_shift_norm"] = UseScaleShiftNorm, ["in_channels"] = InChannels,
        ["channel_mult"] = string.Join(",", ChannelMultiplier()), ["num_classes"] = ClassCount,
    };

    /// <summary><see cref="ToJson"/> as indented JSON text.</summary>
    public string ToJsonString() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    static int Int(JsonObject o, string key, int def) => o[key] switch
    {
        null => def,
        JsonValue v when v.TryGetValue(out int i) => i,
        JsonValue v when v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue => (int)d,
        JsonValue v when v.TryGetValue(out string? s) && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int p) => p,
        var n => throw new ArgumentException($"\"{key}\" must be an integer, got {n.ToJsonString()}"),
    };

    static double Dbl(JsonObject o, string key, double def) => o[key] switch
    {
        null => def,
        JsonValue v when v.TryGetValue(out double d) => d,
        JsonValue v when v.TryGetValue(out string? s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p,
        var n => throw new ArgumentException($"\"{key}\" must be a number, got {n.ToJsonString()}"),
    };

    static bool Bool(JsonObject o, string key, bool def) => o[key] switch
    {
        null => def,
        JsonValue v when v.TryGetValue(out bool b) => b,
        JsonValue v when v.TryGetValue(out string? s) && s.ToLowerInvariant() is "true" or "false" or "yes" or "no" or "1" or "0" or "t" or "f" or "y" or "n"
            => s.ToLowerInvariant() is "true" or "yes" or "1" or "t" or "y",
        var n => throw new ArgumentException($"\"{key}\" must be true or false, got {n.ToJsonString()}"),
    };

    static string Str(JsonObject o, string key, string def) => o[key] switch
    {
        null => def,
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonValue v when v.TryGetValue(out int i) => i.ToString(CultureInfo.InvariantCulture),
        JsonArray a => string.Join(",", a.Select(e => e?.ToJsonString())),
        var n => throw new ArgumentException($"\"{key}\" must be a string, got {n.ToJsonString()}"),
    };
}

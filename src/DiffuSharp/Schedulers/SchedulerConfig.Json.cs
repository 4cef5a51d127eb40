// scheduler_config.json in and out, as diffusers 0.27.2's ConfigMixin reads and writes it (configuration_utils.py:
// from_config, to_json_string: keys sorted, indent 2, Python's json, which spells −∞ as a bare -Infinity).
// Rules: _class_name / _diffusers_version / _use_default_values are metadata; a key no known class reads is an
// error naming key and file; a key another class reads is kept verbatim and written back (diffusers keeps it as an
// unused config entry); a wrong JSON type or an unsupported value is an error naming key, value and file.
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DiffuSharp.Schedulers;

public sealed partial record SchedulerConfig
{
    /// <summary>diffusers' version written as <c>_diffusers_version</c>.</summary>
    public const string DiffusersVersion = "0.27.2";

    /// <summary>Reads a <c>scheduler_config.json</c> file (see <see cref="FromJson"/>).</summary>
    public static SchedulerConfig Load(string path, string? className = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: scheduler config not found", path);
        return FromJson(File.ReadAllText(path), path, className);
    }

    /// <summary>
    /// Parses scheduler config JSON. The class is <paramref name="className"/> when given (diffusers'
    /// <c>XScheduler.from_config(other_config)</c>), else the file's <c>_class_name</c>. Keys the class does not read
    /// start from that class's defaults. <paramref name="source"/> names the file in error messages.
    /// </summary>
    /// <exception cref="InvalidDataException">Unknown key, wrong JSON type, unsupported value or malformed JSON.</exception>
    public static SchedulerConfig FromJson(string json, string source, string? className = null)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(QuoteNonFinite(json)); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: expected a JSON object");
            IO.StrictJson.CheckText(root, source);
            if (className is null)
            {
                if (!root.TryGetProperty("_class_name", out var cn) || cn.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{source}: no \"_class_name\" string: which scheduler is this?");
                className = cn.GetString()!;
            }
            if (!SchedulerKeys.IsKnownClass(className))
                throw new InvalidDataException($"{source}: unsupported scheduler class '{className}' (supported: {string.Join(", ", SchedulerKeys.ClassNames)})");
            var c = DefaultsFor(className);
            var other = new SortedDictionary<string, string>(StringComparer.Ordinal);
            // keys whose value is the class default: absent, or listed in _use_default_values (diffusers' record of
            // the __init__ defaults it filled in); from_config does not carry them to another class
            var defaulted = new HashSet<string>(SchedulerKeys.KeysOf(className), StringComparer.Ordinal);
            var listedDefaults = new HashSet<string>(StringComparer.Ordinal);
            if (root.TryGetProperty("_use_default_values", out var udv) && udv.ValueKind == JsonValueKind.Array)
                foreach (var e in udv.EnumerateArray()) if (e.ValueKind == JsonValueKind.String) listedDefaults.Add(e.GetString()!);
            foreach (var p in root.EnumerateObject())
            {
                if (SchedulerKeys.IsMetadata(p.Name)) continue;
                if (!listedDefaults.Contains(p.Name)) defaulted.Remove(p.Name);
                if (!SchedulerKeys.AnyClassReads(p.Name))
                    throw new InvalidDataException($"{source}: unknown scheduler config key '{p.Name}' (no supported scheduler reads it)");
                if (!SchedulerKeys.ClassReads(className, p.Name)) { other[p.Name] = p.Value.GetRawText(); continue; }
                c = Apply(c, new Field(p.Name, p.Value, source));
            }
            c = c with { OtherKeys = other, DefaultedKeys = defaulted };
            c.Validate(source);
            return c;
        }
    }

    /// <summary>Checks the value ranges a scheduler relies on; <paramref name="source"/> names the file in errors.</summary>
    public void Validate(string source = "scheduler config")
    {
        if (!SchedulerKeys.IsKnownClass(ClassName)) throw new InvalidDataException($"{source}: unsupported scheduler class '{ClassName}'");
        if (NumTrainTimesteps < 2) throw new InvalidDataException($"{source}: num_train_timesteps must be at least 2, got {NumTrainTimesteps}");
        if (TrainedBetas is { } tb && tb.Length != NumTrainTimesteps)
            throw new InvalidDataException($"{source}: trained_betas has {tb.Length} values, num_train_timesteps is {NumTrainTimesteps}");
        if (TrainedBetas is null && !(BetaStart > 0 && BetaEnd > 0 && BetaEnd < 1 && BetaStart < 1))
            throw new InvalidDataException($"{source}: beta_start and beta_end must lie in (0, 1), got {BetaStart} and {BetaEnd}");
        if (StepsOffset < 0) throw new InvalidDataException($"{source}: steps_offset must be >= 0, got {StepsOffset}");
        if (SolverOrder is < 1 or > 3) throw new InvalidDataException($"{source}: solver_order must be 1, 2 or 3, got {SolverOrder}");
        if (!(DynamicThresholdingRatio > 0 && DynamicThresholdingRatio <= 1))
            throw new InvalidDataException($"{source}: dynamic_thresholding_ratio must lie in (0, 1], got {DynamicThresholdingRatio}");
    }

    /// <summary>The JSON diffusers' save_config writes: metadata, every key this class reads, then the kept keys of
    /// other classes; keys sorted, indent 2.</summary>
    public string ToJson()
    {
        var entries = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["_class_name"] = JsonString(ClassName),
            ["_diffusers_version"] = JsonString(DiffusersVersion),
        };
        foreach (var key in SchedulerKeys.KeysOf(ClassName)) entries[key] = Format(key);
        foreach (var (k, v) in OtherKeys) entries[k] = v;
        var sb = new StringBuilder("{\n");
        int i = 0;
        foreach (var (k, v) in entries)
            sb.Append("  ").Append(JsonString(k)).Append(": ").Append(v).Append(++i < entries.Count ? ",\n" : "\n");
        return sb.Append("}\n").ToString();
    }

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> (atomically).</summary>
    public void Save(string path) => IO.AtomicFile.Write(path, s => s.Write(Encoding.UTF8.GetBytes(ToJson())));

    /// <summary>The keys of <see cref="ClassName"/> whose values are its defaults rather than explicit settings (set
    /// when read from JSON; null for a config built in code, where a value equal to the default counts as default).</summary>
    public IReadOnlySet<string>? DefaultedKeys { get; init; }

    /// <summary>
    /// diffusers' <c>NewClass.from_config(this)</c>: the keys <paramref name="className"/> reads take this config's
    /// explicit values (a kept key of another class included), all others the new class's defaults; keys only this
    /// class reads are kept for saving.
    /// </summary>
    public SchedulerConfig As(string className)
    {
        if (className == ClassName) return this;
        if (!SchedulerKeys.IsKnownClass(className))
            throw new ArgumentException($"unknown scheduler class '{className}' (known: {string.Join(", ", SchedulerKeys.ClassNames)})");
        var defaults = DefaultsFor(ClassName);
        var entries = new SortedDictionary<string, string>(OtherKeys.ToDictionary(), StringComparer.Ordinal);
        foreach (var key in SchedulerKeys.KeysOf(ClassName))
        {
            string value = Format(key);
            bool isDefault = DefaultedKeys is { } d ? d.Contains(key) : value == defaults.Format(key);
            if (!isDefault) entries[key] = value;
        }
        var sb = new StringBuilder("{");
        foreach (var (k, v) in entries) sb.Append(sb.Length > 1 ? ", " : "").Append(JsonString(k)).Append(": ").Append(v);
        return FromJson(sb.Append('}').ToString(), $"{ClassName} config", className);
    }

    readonly record struct Field(string Key, JsonElement Value, string Source)
    {
        InvalidDataException Type(string expected) =>
            new($"{Source}: key '{Key}' must be {expected}, got {Value.ValueKind.ToString().ToLowerInvariant()} {Value.GetRawText()}");

        public bool IsNull => Value.ValueKind == JsonValueKind.Null;

        public int Int()
        {
            if (Value.ValueKind != JsonValueKind.Number || !Value.TryGetInt32(out int v)) throw Type("an integer");
            return v;
        }

        public double Double()
        {
            if (Value.ValueKind == JsonValueKind.Number) return Value.GetDouble();
            if (Value.ValueKind == JsonValueKind.String)      // Python's -Infinity / Infinity / NaN, quoted by QuoteNonFinite
                switch (Value.GetString())
                {
                    case "-Infinity": return double.NegativeInfinity;
                    case "Infinity": return double.PositiveInfinity;
                }
            throw Type("a number");
        }

        public double? NullableDouble() => IsNull ? null : Double();

        public bool Bool() => Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Type("true or false"),
        };

        public T Enum<T>() where T : struct, Enum
        {
            if (Value.ValueKind != JsonValueKind.String) throw Type("a string");
            var names = SchedulerKeys.Names<T>();
            int i = Array.IndexOf(names, Value.GetString());
            if (i < 0) throw Unsupported(string.Join(", ", names));
            return (T)(object)i;
        }

        public InvalidDataException Unsupported(string supported) =>
            new($"{Source}: key '{Key}' has unsupported value {Value.GetRawText()} (supported: {supported})");

        public double[]? Doubles()
        {
            if (IsNull) return null;
            if (Value.ValueKind != JsonValueKind.Array) throw Type("an array of numbers or null");
            var r = new double[Value.GetArrayLength()];
            int i = 0;
            foreach (var e in Value.EnumerateArray())
                r[i++] = e.ValueKind == JsonValueKind.Number ? e.GetDouble() : throw Type("an array of numbers or null");
            return r;
        }

        public int[] Ints()
        {
            if (Value.ValueKind != JsonValueKind.Array) throw Type("an array of integers");
            var r = new int[Value.GetArrayLength()];
            int i = 0;
            foreach (var e in Value.EnumerateArray())
                r[i++] = e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v : throw Type("an array of integers");
            return r;
        }
    }

    static SchedulerConfig Apply(SchedulerConfig c, Field f) => f.Key switch
    {
        "num_train_timesteps" => c with { NumTrainTimesteps = f.Int() },
        "beta_start" => c with { BetaStart = f.Double() },
        "beta_end" => c with { BetaEnd = f.Double() },
        "beta_schedule" => c with { BetaSchedule = f.Enum<BetaSchedule>() },
        "trained_betas" => c with { TrainedBetas = f.Doubles() },
        "prediction_type" => c with { PredictionType = f.Enum<PredictionType>() },
        "timestep_spacing" => c with { TimestepSpacing = f.Enum<TimestepSpacing>() },
        "steps_offset" => c with { StepsOffset = f.Int() },
        "set_alpha_to_one" => c with { SetAlphaToOne = f.Bool() },
        "clip_sample" => c with { ClipSample = f.Bool() },
        "clip_sample_range" => c with { ClipSampleRange = f.Double() },
        "thresholding" => c with { Thresholding = f.Bool() },
        "dynamic_thresholding_ratio" => c with { DynamicThresholdingRatio = f.Double() },
        "sample_max_value" => c with { SampleMaxValue = f.Double() },
        "use_karras_sigmas" => c with { UseKarrasSigmas = !f.IsNull && f.Bool() },   // Optional[bool] in diffusers
        "rescale_betas_zero_snr" => c with { RescaleBetasZeroSnr = f.Bool() },
        "variance_type" => c with { VarianceType = f.IsNull ? null : f.Enum<VarianceType>() },
        "solver_order" => c with { SolverOrder = f.Int() },
        "lower_order_final" => c with { LowerOrderFinal = f.Bool() },
        "final_sigmas_type" => c with { FinalSigmasType = f.Enum<FinalSigmasType>() },
        "algorithm_type" => c with { AlgorithmType = f.Enum<AlgorithmType>() },
        "solver_type" => c with { SolverType = f.Enum<SolverType>() },
        "euler_at_final" => c with { EulerAtFinal = f.Bool() },
        "use_lu_lambdas" => c with { UseLuLambdas = f.Bool() },
        "lambda_min_clipped" => c with { LambdaMinClipped = f.Double() },
        "predict_x0" => c with { PredictX0 = f.Bool() },
        "disable_corrector" => c with { DisableCorrector = f.Ints() },
        "solver_p" => f.IsNull ? c : throw f.Unsupported("null: a solver scheduler object cannot come from JSON"),
        "timestep_type" => c with { TimestepType = f.Enum<TimestepType>() },
        "skip_prk_steps" => c with { SkipPrkSteps = f.Bool() },
        "interpolation_type" => c with { InterpolationType = f.Enum<InterpolationType>() },
        "sigma_min" => c with { SigmaMin = f.NullableDouble() },
        "sigma_max" => c with { SigmaMax = f.NullableDouble() },
        _ => throw new InvalidOperationException($"SchedulerKeys lists '{f.Key}' but SchedulerConfig does not read it"),
    };

    string Format(string key) => key switch
    {
        "num_train_timesteps" => Int(NumTrainTimesteps),
        "beta_start" => Num(BetaStart),
        "beta_end" => Num(BetaEnd),
        "beta_schedule" => JsonString(SchedulerKeys.Spell(BetaSchedule)),
        "trained_betas" => TrainedBetas is null ? "null" : "[" + string.Join(", ", TrainedBetas.Select(Num)) + "]",
        "prediction_type" => JsonString(SchedulerKeys.Spell(PredictionType)),
        "timestep_spacing" => JsonString(SchedulerKeys.Spell(TimestepSpacing)),
        "steps_offset" => Int(StepsOffset),
        "set_alpha_to_one" => Bool(SetAlphaToOne),
        "clip_sample" => Bool(ClipSample),
        "clip_sample_range" => Num(ClipSampleRange),
        "thresholding" => Bool(Thresholding),
        "dynamic_thresholding_ratio" => Num(DynamicThresholdingRatio),
        "sample_max_value" => Num(SampleMaxValue),
        "use_karras_sigmas" => Bool(UseKarrasSigmas),
        "rescale_betas_zero_snr" => Bool(RescaleBetasZeroSnr),
        "variance_type" => VarianceType is { } v ? JsonString(SchedulerKeys.Spell(v)) : "null",
        "solver_order" => Int(SolverOrder),
        "lower_order_final" => Bool(LowerOrderFinal),
        "final_sigmas_type" => JsonString(SchedulerKeys.Spell(FinalSigmasType)),
        "algorithm_type" => JsonString(SchedulerKeys.Spell(AlgorithmType)),
        "solver_type" => JsonString(SchedulerKeys.Spell(SolverType)),
        "euler_at_final" => Bool(EulerAtFinal),
        "use_lu_lambdas" => Bool(UseLuLambdas),
        "lambda_min_clipped" => Num(LambdaMinClipped),
        "predict_x0" => Bool(PredictX0),
        "disable_corrector" => "[" + string.Join(", ", DisableCorrector.Select(Int)) + "]",
        "solver_p" => "null",
        "timestep_type" => JsonString(SchedulerKeys.Spell(TimestepType)),
        "skip_prk_steps" => Bool(SkipPrkSteps),
        "interpolation_type" => JsonString(SchedulerKeys.Spell(InterpolationType)),
        "sigma_min" => SigmaMin is { } smin ? Num(smin) : "null",
        "sigma_max" => SigmaMax is { } smax ? Num(smax) : "null",
        _ => throw new InvalidOperationException($"SchedulerKeys lists '{key}' but SchedulerConfig does not write it"),
    };

    static string Int(int v) => v.ToString(CultureInfo.InvariantCulture);
    static string Bool(bool v) => v ? "true" : "false";
    // Python's json.dumps escapes only quotes, backslashes, control and non-ASCII characters ("dpmsolver++" stays as is)
    static string JsonString(string s) => JsonSerializer.Serialize(s, PythonLike);
    static readonly JsonSerializerOptions PythonLike = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    // Python's float repr: shortest round-trip digits, always with a '.' or exponent; −∞ as Python's json writes it.
    static string Num(double v)
    {
        if (double.IsNegativeInfinity(v)) return "-Infinity";
        if (double.IsPositiveInfinity(v)) return "Infinity";
        if (double.IsNaN(v)) return "NaN";
        string s = v.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') ? s.Replace("E", "e") : s + ".0";
    }

    // Python's json writes −∞ / ∞ / NaN as bare tokens, which JSON parsers refuse: quote them outside strings.
    static string QuoteNonFinite(string json)
    {
        if (!json.Contains("Infinity") && !json.Contains("NaN")) return json;
        var sb = new StringBuilder(json.Length + 8);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char ch = json[i];
            if (inString)
            {
                sb.Append(ch);
                if (ch == '\\' && i + 1 < json.Length) sb.Append(json[++i]);
                else if (ch == '"') inString = false;
                continue;
            }
            if (ch == '"') { inString = true; sb.Append(ch); continue; }
            foreach (var token in (ReadOnlySpan<string>)["-Infinity", "Infinity", "NaN"])
                if (string.CompareOrdinal(json, i, token, 0, token.Length) == 0)
                {
                    sb.Append('"').Append(token).Append('"');
                    i += token.Length - 1;
                    goto next;
                }
            sb.Append(ch);
        next:;
        }
        return sb.ToString();
    }
}

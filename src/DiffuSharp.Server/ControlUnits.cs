// The ControlNets of a request, whichever endpoint it came through, and their checks against the model:
//   the page's /api/jobs     "controlnets": [{"name", "image", "scale", "guidance_start", "guidance_end"}], or the older
//                            "control_image" + "control_scale" for the model's first ControlNet
//   sd-webui's /sdapi/v1     "alwayson_scripts": {"controlnet": {"args": [unit, …]}} as the sd-webui-controlnet
//                            extension's API takes them (internal_controlnet/external_code.py, to_processing_unit): per
//                            unit "enabled" (absent: true), "image" (or its older name "input_image": a base64 PNG, or
//                            {"image": …}), "model" (our net's name, or its folder's; sd-webui's " [hash]" suffix is
//                            dropped), "weight", "guidance_start", "guidance_end", "module": "none" (the image is the
//                            control image), "canny" (our Canny edges of it) or "silhouette" (our filled mask of it).
// The control image is never resized: it must be the output's size, as for `txt2img --control-image`.
using System.Globalization;
using System.Text.Json;
using DiffuSharp.Imaging;
using DiffuSharp.Pipelines;

namespace DiffuSharp.Server;

/// <summary>One ControlNet of a job.</summary>
/// <param name="Name">the net's name in the model's list; null: the model's first ControlNet</param>
/// <param name="Image">the control image, the output's size</param>
/// <param name="Field">the request field it came from, for messages ("controlnets[1]", "control_image")</param>
/// <param name="Module">the preprocessor the server ran on the uploaded picture: none, canny or silhouette</param>
public sealed record ControlUnit(string? Name, Image8 Image, double Scale, double Start, double End, string Field, string Module = "none");

public static class ControlUnits
{
    /// <summary>At most this many ControlNets in one job.</summary>
    public const int MaxUnits = 8;

    /// <summary>The page's control fields: the list, or the single image for the first net (not both).</summary>
    public static List<ControlUnit>? FromJobRequest(JobRequest r, int maxPixels)
    {
        if (r.ControlImage is not null && r.ControlNets is { Count: > 0 })
            throw new HttpError(400, "give control_image (the first ControlNet) or controlnets (by name), not both");
        if (r.ControlImage is not null)
            return [new ControlUnit(null, RequestBody.DecodeImage("control_image", r.ControlImage, maxPixels), r.ControlScale, 0, 1, "control_image")];
        if (r.ControlNets is null || r.ControlNets.Count == 0) return null;
        if (r.ControlNets.Count > MaxUnits) throw new HttpError(400, $"controlnets: at most {MaxUnits}, got {r.ControlNets.Count}");
        var units = new List<ControlUnit>();
        for (int k = 0; k < r.ControlNets.Count; k++)
        {
            var c = r.ControlNets[k] ?? throw new HttpError(400, $"controlnets[{k}]: expected an object with name, image and scale");
            string field = $"controlnets[{k}]";
            if (string.IsNullOrEmpty(c.Name)) throw new HttpError(400, $"{field}.name: the ControlNet's name is required (the model's controlnet_names)");
            if (c.Image is null) throw new HttpError(400, $"{field}.image: a base64 PNG is required");
            units.Add(new ControlUnit(c.Name, RequestBody.DecodeImage(field + ".image", c.Image, maxPixels), c.Scale, c.GuidanceStart, c.GuidanceEnd, field));
        }
        return units;
    }

    /// <summary>sd-webui-controlnet's units from alwayson_scripts' "controlnet" entry (any case); other scripts are
    /// refused by name. Disabled units are left out.</summary>
    public static List<ControlUnit>? FromAlwaysOnScripts(Dictionary<string, JsonElement>? scripts, int maxPixels)
    {
        if (scripts is null || scripts.Count == 0) return null;
        List<ControlUnit>? units = null;
        foreach (var (key, value) in scripts)
        {
            if (!string.Equals(key, "controlnet", StringComparison.OrdinalIgnoreCase))
                throw new HttpError(400, $"alwayson_scripts.{Short(key)} is not supported by DiffuSharp; only controlnet");
            if (units is not null) throw new HttpError(400, "alwayson_scripts: controlnet is given twice");
            if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty("args", out var args) || args.ValueKind != JsonValueKind.Array)
                throw new HttpError(400, $"alwayson_scripts.{key}: expected {{\"args\": [unit, …]}}");
            units = [];
            int k = 0;
            foreach (var unit in args.EnumerateArray())
            {
                string field = $"alwayson_scripts.{key}.args[{k++}]";
                if (unit.ValueKind != JsonValueKind.Object) throw new HttpError(400, $"{field}: expected a ControlNet unit object");
                if (SdUnit(unit, field, maxPixels) is { } u) units.Add(u);
            }
            if (units.Count > MaxUnits) throw new HttpError(400, $"alwayson_scripts.{key}: at most {MaxUnits} enabled units, got {units.Count}");
        }
        return units is { Count: > 0 } ? units : null;
    }

    static ControlUnit? SdUnit(JsonElement unit, string field, int maxPixels)
    {
        if (unit.TryGetProperty("enabled", out var en) && en.ValueKind == JsonValueKind.False) return null;
        string module = String(unit, "module", field) ?? "none";
        if (module is not ("none" or "canny" or "silhouette"))
            throw new HttpError(400, $"{field}.module: '{Short(module)}' is not supported; none (the image is the control image), canny or silhouette");
        string? model = String(unit, "model", field);
        if (model is null or "" or "None") throw new HttpError(400, $"{field}.model: name the ControlNet (the model's controlnet_names)");
        int bracket = model.LastIndexOf(" [", StringComparison.Ordinal);
        if (bracket > 0 && model.EndsWith(']')) model = model[..bracket];                       // sd-webui's "name [hash]"
        if (unit.TryGetProperty("control_mode", out var mode) && !(mode.ValueKind == JsonValueKind.Number && mode.GetDouble() == 0
            || mode.ValueKind == JsonValueKind.String && mode.GetString() == "Balanced"))
            throw new HttpError(400, $"{field}.control_mode: only Balanced (0) is supported, got {Short(mode.GetRawText())}");
        if (unit.TryGetProperty("image", out _) && unit.TryGetProperty("input_image", out _))
            throw new HttpError(400, $"{field}: give image or input_image, not both");
        var image = unit.TryGetProperty("image", out var img) ? img : unit.TryGetProperty("input_image", out var old) ? old : default;
        if (image.ValueKind == JsonValueKind.Object && image.TryGetProperty("image", out var inner)) image = inner;   // {"image": …, "mask": …}
        if (image.ValueKind != JsonValueKind.String) throw new HttpError(400, $"{field}.image: a base64 PNG is required");
        var picture = RequestBody.DecodeImage(field + ".image", image.GetString()!, maxPixels);
        var control = module switch
        {
            "canny" => Canny.Detect(picture),
            "silhouette" => SilhouetteImage(picture),
            _ => picture,
        };
        return new ControlUnit(model, control, Number(unit, "weight", field, 1.0), Number(unit, "guidance_start", field, 0.0),
            Number(unit, "guidance_end", field, 1.0), field, module);
    }

    /// <summary>The filled object mask of a picture (as `diffusharp edges --silhouette`): 255 inside, 0 outside.</summary>
    public static Image8 SilhouetteImage(Image8 picture, double threshold = 0.05, bool invert = false)
    {
        var mask = Silhouette.Mask(Canny.ToUnit(picture), picture.Width, picture.Height, threshold, invert);
        var px = new byte[mask.Length];
        for (int k = 0; k < px.Length; k++) px[k] = mask[k] ? (byte)255 : (byte)0;
        return new Image8(picture.Width, picture.Height, 1, px);
    }

    /// <summary>The units checked against the model and the run's size: each name found in the model's list (null:
    /// its first net) and replaced by the list's name, scale and guidance range in bounds, image of the output's size.
    /// Throws ArgumentException naming the field.</summary>
    public static List<ControlUnit> Resolve(IReadOnlyList<ControlUnit> units, ModelEntry model, int width, int height)
    {
        var nets = model.ControlNetList;
        if (nets.Count == 0) throw new ArgumentException($"a control image needs a pipeline with a ControlNet; {model.Name} has none");
        var resolved = new List<ControlUnit>();
        foreach (var u in units)
        {
            var net = u.Name is null ? nets[0] : PipelineControlNets.Find(nets, u.Name)
                ?? throw new ArgumentException($"{u.Field}: {model.Name} has no ControlNet '{Short(u.Name)}'; its ControlNets: {PipelineControlNets.Names(nets)}");
            static string Num(double v) => v.ToString(CultureInfo.InvariantCulture);
            Check(double.IsFinite(u.Scale) && u.Scale >= 0 && u.Scale <= 5, $"{u.Field} ({net.Name}): the scale must be between 0 and 5, got {Num(u.Scale)}");
            Check(double.IsFinite(u.Start) && double.IsFinite(u.End) && 0 <= u.Start && u.Start < u.End && u.End <= 1,
                $"{u.Field} ({net.Name}): guidance_start {Num(u.Start)} and guidance_end {Num(u.End)} must satisfy 0 ≤ start < end ≤ 1");
            Check(u.Image.Width == width && u.Image.Height == height,
                $"{u.Field} ({net.Name}): the control image is {u.Image.Width}x{u.Image.Height}, the output {width}x{height}; they must match (it is not resized)");
            resolved.Add(u with { Name = net.Name });
        }
        return resolved;
    }

    /// <summary>sd-webui's ControlNet extension's entry of the parameters text: one quoted "ControlNet k" per unit.</summary>
    public static string Parameters(IReadOnlyList<ControlUnit> units)
    {
        var inv = CultureInfo.InvariantCulture;
        return string.Join(", ", units.Select((u, k) => $"ControlNet {k}: \"Module: {u.Module}, Model: {u.Name}, Weight: {u.Scale.ToString(inv)}, " +
            $"Resize Mode: Just Resize, Guidance Start: {u.Start.ToString(inv)}, Guidance End: {u.End.ToString(inv)}, Pixel Perfect: False, Control Mode: Balanced\""));
    }

    static string? String(JsonElement o, string name, string field)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new HttpError(400, $"{field}.{name}: expected a string");
    }

    static double Number(JsonElement o, string name, string field, double fallback)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new HttpError(400, $"{field}.{name}: expected a number");
    }

    static void Check(bool ok, string message)
    {
        if (!ok) throw new ArgumentException(message);
    }

    static string Short(string s) => s.Length <= 80 ? s : s[..80] + "…";
}

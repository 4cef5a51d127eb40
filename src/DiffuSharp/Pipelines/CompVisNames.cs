// The names of an original (CompVis / LDM) Stable Diffusion checkpoint, mapped to diffusers' component names. Rules
// follow LDM's module layout (openaimodel.py's input_blocks / middle_block / output_blocks, the autoencoder's
// encoder.down.i.block.j / decoder.up.i, reversed), as diffusers 0.27's convert_from_ckpt.py and
// scripts/convert_diffusers_to_original_stable_diffusion.py apply them, written from the layout, not from that
// code. L = layers_per_block:
//   UNet   input_blocks.0.0 = conv_in; input_blocks.{1+i(L+1)+j}.{0,1} = down_blocks.i.{resnets,attentions}.j;
//          input_blocks.{(i+1)(L+1)}.0.op = down_blocks.i.downsamplers.0.conv; middle_block.{0,1,2} = mid_block.
//          {resnets.0, attentions.0, resnets.1}; output_blocks.{i(L+1)+j}.0 = up_blocks.i.resnets.j, .1 its attention
//          (or, at j = L without attentions, the upsampler), .2 the upsampler; time_embed.{0,2} =
//          time_embedding.linear_{1,2}; out.{0,2} = conv_norm_out / conv_out; in a resnet in_layers.{0,2} = norm1/conv1,
//          emb_layers.1 = time_emb_proj, out_layers.{0,3} = norm2/conv2, skip_connection = conv_shortcut.
//   VAE    {encoder,decoder}.mid.block_{1,2} = mid_block.resnets.{0,1}; mid.attn_1.{norm,q,k,v,proj_out} =
//          mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0} (weights stored as (C, C, 1, 1) convolutions);
//          encoder.down.i.{block.j, downsample} = encoder.down_blocks.i.{resnets.j, downsamplers.0};
//          decoder.up.k.{block.j, upsample} = decoder.up_blocks.{N−1−k}.{resnets.j, upsamplers.0}; norm_out =
//          conv_norm_out; nin_shortcut = conv_shortcut.
//   Text   SD 1.x: cond_stage_model.transformer.* is transformers' CLIPTextModel ("text_model." added when an old
//          checkpoint lacks it). SD 2.x: cond_stage_model.model.* is OpenCLIP: transformer.resblocks.N.{ln_1, ln_2,
//          attn.in_proj_{weight,bias} (q, k, v stacked by rows), attn.out_proj, mlp.c_fc, mlp.c_proj} =
//          text_model.encoder.layers.N.{layer_norm1, layer_norm2, self_attn.{q,k,v}_proj, self_attn.out_proj,
//          mlp.fc1, mlp.fc2}; token_embedding, positional_embedding, ln_final; resblocks past the text encoder's
//          num_hidden_layers, text_projection and logit_scale are not part of a CLIPTextModel.
namespace DiffuSharp.Pipelines;

/// <summary>One diffusers tensor a checkpoint key provides: the whole key, or (Part 0, 1, 2) the q, k or v third of
/// an OpenCLIP in_proj tensor's rows.</summary>
public readonly record struct CompVisTarget(string Component, string Name, int Part = -1);

/// <summary>Maps the names of an original (CompVis / LDM) Stable Diffusion 1.x or 2.x checkpoint to diffusers'
/// component names, following LDM's module layout as diffusers' conversion scripts do.</summary>
public static class CompVisNames
{
    /// <summary>The prefix of the UNet's keys in a CompVis checkpoint.</summary>
    public const string UnetPrefix = "model.diffusion_model.";
    /// <summary>The prefix of the VAE's keys (LDM's first stage model).</summary>
    public const string VaePrefix = "first_stage_model.";
    /// <summary>The prefix of SD 1.x's text encoder keys (transformers' CLIPTextModel).</summary>
    public const string ClipPrefix = "cond_stage_model.transformer.";
    /// <summary>The prefix of SD 2.x's text encoder keys (OpenCLIP).</summary>
    public const string OpenClipPrefix = "cond_stage_model.model.";

    // Buffers and extras real SD checkpoints carry beside the weights: LDM's DDPM schedule, the EMA copy, training state.
    static readonly HashSet<string> IgnoredKeys = new(StringComparer.Ordinal)
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "logvar", "lvlb_weights",
        "cond_stage_model.transformer.text_model.embeddings.position_ids", "cond_stage_model.transformer.embeddings.position_ids",
        "cond_stage_model.model.text_projection", "cond_stage_model.model.logit_scale",
    };

    /// <summary>The diffusers tensors a checkpoint key maps to; empty for a key that is known to be ignorable
    /// (<paramref name="ignored"/> true) or outside every component (<paramref name="ignored"/> false). A key inside a
    /// component whose name fits no rule is an InvalidDataException naming it.</summary>
    public static IReadOnlyList<CompVisTarget> Map(string key, SingleFileLayout layout, out bool ignored, string source = "checkpoint")
    {
        ignored = true;
        if (IgnoredKeys.Contains(key) || key.StartsWith("model_ema.", StringComparison.Ordinal)) return [];
        try
        {
            if (key.StartsWith(UnetPrefix, StringComparison.Ordinal))
                return [new("unet", Unet(key[UnetPrefix.Length..], layout))];
            if (key.StartsWith(VaePrefix, StringComparison.Ordinal))
                return key.StartsWith(VaePrefix + "loss.", StringComparison.Ordinal) ? [] : [new("vae", Vae(key[VaePrefix.Length..], layout))];
            if (key.StartsWith(ClipPrefix, StringComparison.Ordinal))
            {
                string rest = key[ClipPrefix.Length..];
                return [new("text_encoder", rest.StartsWith("text_model.", StringComparison.Ordinal) ? rest : "text_model." + rest)];
            }
            if (key.StartsWith(OpenClipPrefix, StringComparison.Ordinal)) return OpenClip(key[OpenClipPrefix.Length..], layout);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{source}: '{key}' fits no Stable Diffusion name rule ({e.Message})");
        }
        ignored = false;
        return [];
    }

    /// <summary>A key of a standalone LDM VAE file (encoder.*, decoder.*, quant_conv, post_quant_conv without the
    /// first_stage_model. prefix, as vae-ft-mse-840000-ema-pruned.safetensors); its discriminator (loss.*) and EMA
    /// copies are ignorable, anything else outside the VAE is unrecognised.</summary>
    public static IReadOnlyList<CompVisTarget> MapVae(string key, SingleFileLayout layout, out bool ignored, string source = "checkpoint")
    {
        ignored = key.StartsWith("loss.", StringComparison.Ordinal) || key.StartsWith("model_ema.", StringComparison.Ordinal);
        if (ignored || key.Split('.')[0] is not ("encoder" or "decoder" or "quant_conv" or "post_quant_conv")) return [];
        try { return [new("vae", Vae(key, layout))]; }
        catch (FormatException e) { throw new InvalidDataException($"{source}: '{key}' fits no VAE name rule ({e.Message})"); }
    }

    static string Unet(string k, SingleFileLayout layout)
    {
        int l = layout.UnetLayersPerBlock;
        var p = k.Split('.');
        if (k.StartsWith("time_embed.0.", StringComparison.Ordinal)) return "time_embedding.linear_1." + Tail(p, 2);
        if (k.StartsWith("time_embed.2.", StringComparison.Ordinal)) return "time_embedding.linear_2." + Tail(p, 2);
        if (k.StartsWith("out.0.", StringComparison.Ordinal)) return "conv_norm_out." + Tail(p, 2);
        if (k.StartsWith("out.2.", StringComparison.Ordinal)) return "conv_out." + Tail(p, 2);
        if (p.Length >= 4 && p[0] == "input_blocks")
        {
            int n = Index(p[1]), layer = Index(p[2]);
            if (n == 0 && layer == 0) return "conv_in." + Tail(p, 3);
            int i = (n - 1) / (l + 1), j = (n - 1) % (l + 1);
            if (n < 1 || i >= layout.UnetDownBlockCount) throw new FormatException($"input block {n} is past the {layout.UnetDownBlockCount} down blocks");
            if (j == l && layer == 0 && p[3] == "op") return $"down_blocks.{i}.downsamplers.0.conv." + Tail(p, 4);
            if (j < l && layer == 0) return $"down_blocks.{i}.resnets.{j}." + Resnet(Tail(p, 3));
            if (j < l && layer == 1) return $"down_blocks.{i}.attentions.{j}." + Tail(p, 3);
        }
        if (p.Length >= 3 && p[0] == "middle_block")
            switch (Index(p[1]))
            {
                case 0: return "mid_block.resnets.0." + Resnet(Tail(p, 2));
                case 1: return "mid_block.attentions.0." + Tail(p, 2);
                case 2: return "mid_block.resnets.1." + Resnet(Tail(p, 2));
            }
        if (p.Length >= 4 && p[0] == "output_blocks")
        {
            int n = Index(p[1]), layer = Index(p[2]), i = n / (l + 1), j = n % (l + 1);
            if (i >= layout.UnetUpBlockHasAttention.Count) throw new FormatException($"output block {n} is past the {layout.UnetUpBlockHasAttention.Count} up blocks");
            bool attn = layout.UnetUpBlockHasAttention[i];
            if (layer == 0) return $"up_blocks.{i}.resnets.{j}." + Resnet(Tail(p, 3));
            if (layer == 1 && attn) return $"up_blocks.{i}.attentions.{j}." + Tail(p, 3);
            if (j == l && (layer == 1 && !attn || layer == 2 && attn)) return $"up_blocks.{i}.upsamplers.0." + Tail(p, 3);
        }
        throw new FormatException("not a UNet layer of this layout");
    }

    static string Resnet(string k) => k switch
    {
        _ when k.StartsWith("in_layers.0.", StringComparison.Ordinal) => "norm1." + k[12..],
        _ when k.StartsWith("in_layers.2.", StringComparison.Ordinal) => "conv1." + k[12..],
        _ when k.StartsWith("emb_layers.1.", StringComparison.Ordinal) => "time_emb_proj." + k[13..],
        _ when k.StartsWith("out_layers.0.", StringComparison.Ordinal) => "norm2." + k[13..],
        _ when k.StartsWith("out_layers.3.", StringComparison.Ordinal) => "conv2." + k[13..],
        _ when k.StartsWith("skip_connection.", StringComparison.Ordinal) => "conv_shortcut." + k[16..],
        _ => throw new FormatException($"'{k}' is not a resnet parameter"),
    };

    static string Vae(string k, SingleFileLayout layout)
    {
        var p = k.Split('.');
        if (p.Length < 2 || p[0] is not ("encoder" or "decoder"))
            return p[0] is "quant_conv" or "post_quant_conv" && p.Length == 2 ? k : throw new FormatException("not a VAE layer");
        string side = p[0];
        string rest = Tail(p, 1);
        if (rest.StartsWith("norm_out.", StringComparison.Ordinal)) return $"{side}.conv_norm_out." + rest[9..];
        if (rest.StartsWith("conv_in.", StringComparison.Ordinal) || rest.StartsWith("conv_out.", StringComparison.Ordinal)) return k;
        if (rest.StartsWith("mid.block_1.", StringComparison.Ordinal)) return $"{side}.mid_block.resnets.0." + VaeResnet(rest[12..]);
        if (rest.StartsWith("mid.block_2.", StringComparison.Ordinal)) return $"{side}.mid_block.resnets.1." + VaeResnet(rest[12..]);
        if (rest.StartsWith("mid.attn_1.", StringComparison.Ordinal))
        {
            string a = rest[11..];
            string name = a.Split('.')[0] switch
            {
                "norm" => "group_norm", "q" => "to_q", "k" => "to_k", "v" => "to_v", "proj_out" => "to_out.0",
                _ => throw new FormatException($"'{a}' is not a mid-block attention parameter"),
            };
            return $"{side}.mid_block.attentions.0.{name}." + a[(a.IndexOf('.') + 1)..];
        }
        if (p.Length >= 5 && (side == "encoder" && p[1] == "down" || side == "decoder" && p[1] == "up"))
        {
            int level = Index(p[2]);
            if (level >= layout.VaeLevels) throw new FormatException($"level {level} is past the {layout.VaeLevels} VAE levels");
            int i = side == "encoder" ? level : layout.VaeLevels - 1 - level;
            string blocks = side == "encoder" ? "down_blocks" : "up_blocks";
            if (p[3] == "block") return $"{side}.{blocks}.{i}.resnets.{Index(p[4])}." + VaeResnet(Tail(p, 5));
            if (p[3] is "downsample" or "upsample") return $"{side}.{blocks}.{i}.{(side == "encoder" ? "downsamplers" : "upsamplers")}.0." + Tail(p, 4);
        }
        throw new FormatException("not a VAE layer");
    }

    static string VaeResnet(string k) => k.StartsWith("nin_shortcut.", StringComparison.Ordinal) ? "conv_shortcut." + k[13..]
        : k.Split('.')[0] is "norm1" or "conv1" or "norm2" or "conv2" ? k : throw new FormatException($"'{k}' is not a resnet parameter");

    static IReadOnlyList<CompVisTarget> OpenClip(string k, SingleFileLayout layout)
    {
        const string te = "text_encoder";
        switch (k)
        {
            case "token_embedding.weight": return [new(te, "text_model.embeddings.token_embedding.weight")];
            case "positional_embedding": return [new(te, "text_model.embeddings.position_embedding.weight")];
            case "ln_final.weight": return [new(te, "text_model.final_layer_norm.weight")];
            case "ln_final.bias": return [new(te, "text_model.final_layer_norm.bias")];
        }
        var p = k.Split('.');
        if (p.Length < 5 || p[0] != "transformer" || p[1] != "resblocks") throw new FormatException("not an OpenCLIP text layer");
        int layer = Index(p[2]);
        if (layer >= layout.TextLayers) return [];                       // SD 2.x uses the penultimate layer: the last is dropped
        string at = $"text_model.encoder.layers.{layer}.";
        string rest = Tail(p, 3);
        switch (rest)
        {
            case "attn.in_proj_weight": return [new(te, at + "self_attn.q_proj.weight", 0), new(te, at + "self_attn.k_proj.weight", 1), new(te, at + "self_attn.v_proj.weight", 2)];
            case "attn.in_proj_bias": return [new(te, at + "self_attn.q_proj.bias", 0), new(te, at + "self_attn.k_proj.bias", 1), new(te, at + "self_attn.v_proj.bias", 2)];
        }
        string name = p[3] switch
        {
            "ln_1" => "layer_norm1." + Tail(p, 4),
            "ln_2" => "layer_norm2." + Tail(p, 4),
            "attn" when p[4] == "out_proj" => "self_attn." + Tail(p, 4),
            "mlp" when p[4] == "c_fc" => "mlp.fc1." + Tail(p, 5),
            "mlp" when p[4] == "c_proj" => "mlp.fc2." + Tail(p, 5),
            _ => throw new FormatException("not an OpenCLIP text layer"),
        };
        return [new(te, at + name)];
    }

    static string Tail(string[] parts, int from)
        => from < parts.Length ? string.Join('.', parts, from, parts.Length - from) : throw new FormatException("the name ends early");

    static int Index(string s) => int.TryParse(s, System.Globalization.NumberStyles.None, null, out int i) ? i : throw new FormatException($"'{s}' is not an index");
}

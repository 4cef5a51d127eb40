// diffusharp interpolate: interpolation in the diffusion latent space (DDPM §4.3, Fig. 8; seed 004). Both end
// points are brought to step t — images by q_sample with one shared noise (or by DDIM inversion with
// --encode ddim), seeds by sampling from their own x_T down to t — mixed for every λ (linear, or spherical for
// DDIM latents), and each mix is denoised back to an image: DDIM over --steps, else over every trained step (DDPM
// ancestral, or DDIM after a DDIM inversion). Writes a PNG strip: end image A, one image per λ, end image B.
using System.Globalization;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Diffusion;
using DiffuSharp.Imaging;
using DiffuSharp.Models;

namespace DiffuSharp.Cli;

public static class InterpolateCommand
{
    const string Name = "interpolate";

    static readonly OptionSpec[] Options =
    [
        new("model", "model folder (model.safetensors + model.json)", Value: "DIR"),
        new("images", "the two end images (PNG, JPEG, BMP, GIF, WebP or TIFF; converted to the model's channels and size)", Value: "A.png B.png"),
        new("seeds", "instead of images: two seeds whose samples are the end points", Value: "S1 S2"),
        new("t", "trained timestep at which to mix, 0..diffusion_steps−1 (default: half of diffusion_steps)", Value: "T"),
        new("lambdas", "mixing weights of B, each in [0, 1]", "0,0.25,0.5,0.75,1", Value: "LIST"),
        new("steps", "denoise with DDIM over S evenly spaced steps (default: every trained step, DDPM unless --encode ddim)", Value: "S"),
        new("eta", "DDIM eta (0 = deterministic)", "0", Value: "E"),
        new("encode", "how images reach step t: noise (q_sample, shared noise) | ddim (DDIM inversion)", "noise", Value: "HOW"),
        new("mix", "lerp | slerp (default: lerp for --encode noise, slerp for ddim and seeds)", Value: "HOW"),
        new("class", "class label 0..k−1 or name (shirt, \"ankle boot\"; class-conditional models)", Value: "LABEL"),
        new("seed", "seed of the forward noise and the sampler's noise", "0", Value: "N"),
        new("out", "strip (.png or .jpg): A, one image per λ, B", "interpolation.png", Value: "FILE"),
        new("help", "show this help", IsFlag: true),
    ];

    public static int Run(string[] args, TextWriter stdout)
    {
        var images = CliModel.TakePair(Name, ref args, "images");
        var seeds = CliModel.TakePair(Name, ref args, "seeds");
        var o = OptionParser.Parse(Name, args, Options);
        if (o.Flag("help")) { stdout.WriteLine(OptionParser.Help(Name, "Interpolates two images or two seeds at step t and denoises every mix.", Options)); return 0; }
        if ((images is null) == (seeds is null)) throw new CliException($"{Name}: give either --images A.png B.png or --seeds S1 S2");
        int? steps = o.Has("steps") ? o.Int("steps") : null;
        if (steps < 1) throw new CliException($"{Name}: --steps must be at least 1, got {steps}");
        double eta = o.Double("eta");
        if (eta < 0) throw new CliException($"{Name}: --eta must be non-negative, got {o.Required("eta")}");
        string encode = o.Required("encode");
        if (encode is not ("noise" or "ddim")) throw new CliException($"{Name}: --encode must be noise or ddim, got '{encode}'");
        if (eta > 0 && steps is null && encode != "ddim") throw new CliException($"{Name}: --eta applies to DDIM: pass --steps too");
        if (seeds is not null && o.Has("encode") && args.Contains("--encode")) throw new CliException($"{Name}: --encode applies to --images, not --seeds");
        string mix = o.String("mix") ?? (encode == "noise" && images is not null ? "lerp" : "slerp");
        if (mix is not ("lerp" or "slerp")) throw new CliException($"{Name}: --mix must be lerp or slerp, got '{mix}'");
        double[] lambdas = o.DoubleList("lambdas");
        if (lambdas.Length == 0) throw new CliException($"{Name}: --lambdas needs at least one value");
        foreach (double l in lambdas)
            if (!(l >= 0 && l <= 1)) throw new CliException($"{Name}: every --lambdas value must lie in [0, 1], got {l.ToString(CultureInfo.InvariantCulture)}");
        ulong seed = CliModel.Seed(Name, "seed", o.Required("seed"));
        string outPath = o.Required("out");
        CliModel.CheckImageOutput(Name, outPath);

        var (config, unet) = ModelFolder.Load(o.Required("model"));
        int T = config.DiffusionSteps;
        int t = o.Has("t") ? o.Int("t") : T / 2;
        if (t < 0 || t >= T) throw new CliException($"{Name}: --t must be in 0..{T - 1} (the model's diffusion_steps is {T}), got {t}");
        int? label = CliModel.Label(Name, o, config, o.Required("model"));
        var diffusion = CliModel.Diffusion(Name, config, steps);
        var labelled = CliModel.WithLabel(unet, label);
        ProgressBar? bar = null;                                    // started once the images are read (their message printed)
        DiffusionModel model = (x, t) => { var e = labelled(x, t); bar?.Advance(); return e; };
        int i = CliModel.IndexAtOrBelow(diffusion, t);
        // model calls: the end points' encoding (a DDIM inversion to index i) or descent (from the last index to i),
        // then the denoising of the batch from i to 0
        long calls = (images is null ? 2L * (diffusion.NumTimesteps - 1 - i) : encode == "ddim" ? i : 0) + i + 1;
        int C = config.InChannels, S = config.ImageSize, len = C * S * S;
        int[] one = [1, C, S, S];

        // 1. The two end points at index i (trained timestep map[i]), and the end images of the strip.
        Tensor xtA, xtB;
        float[]? endA = null, endB = null;
        var rng = new Rng(seed);
        if (images is { } pair)
        {
            var (pathA, pathB) = pair;
            var (a, resizedA) = CliModel.ReadImage(Name, pathA, config);
            var (b, resizedB) = CliModel.ReadImage(Name, pathB, config);
            if (resizedA || resizedB) stdout.WriteLine($"images scaled and centre-cropped to {S}×{S}");
            bar = ProgressBar.Start(Name, calls);
            (endA, endB) = (a, b);
            var x0 = Tensor.FromArray([.. a, .. b], 2, C, S, S);
            Tensor xt;
            if (encode == "noise")
            {
                var eps = Tensor.RandN(one, rng);
                xt = diffusion.QSample(x0, GaussianDiffusion.Fill(2, i), Tensor.Concat([eps, eps], 0));
            }
            else xt = diffusion.DdimReverseLoop(model, x0, targetStep: i);
            (xtA, xtB) = (xt.Slice(0, 0, 1).Contiguous(), xt.Slice(0, 1, 1).Contiguous());
        }
        else
        {
            var (sa, sb) = seeds!.Value;
            bar = ProgressBar.Start(Name, calls);
            xtA = Descend(diffusion, model, one, CliModel.Seed(Name, "seeds", sa), i, steps is not null, eta);
            xtB = Descend(diffusion, model, one, CliModel.Seed(Name, "seeds", sb), i, steps is not null, eta);
        }

        // 2. One batch: every mix, then (for seeds) the two end points themselves.
        using var _ = bar;
        var rows = lambdas.Select(l => mix == "lerp" ? Interpolation.MixLatents(xtA, xtB, l) : Interpolation.SlerpLatents(xtA, xtB, l)).ToList();
        if (seeds is not null) rows.AddRange([xtA, xtB]);
        var batch = Tensor.Concat(rows, 0).Contiguous();
        int[] shape = batch.Shape;
        // 3. Denoise from index i down to 0 (DDIM with --steps, and always after a DDIM inversion, whose latents only
        //    the deterministic path maps back).
        bool ddim = steps is not null || encode == "ddim";
        var x = ddim
            ? diffusion.DdimSampleLoop(model, shape, rng, batch, eta, startStep: i)
            : diffusion.PSampleLoop(model, shape, rng, batch, startStep: i);
        var result = x.ToArray();
        bar.Dispose();
        if (seeds is not null)
        {
            endA = result.AsSpan(lambdas.Length * len, len).ToArray();
            endB = result.AsSpan((lambdas.Length + 1) * len, len).ToArray();
        }
        var strip = new float[(lambdas.Length + 2) * len];
        endA!.CopyTo(strip, 0);
        result.AsSpan(0, lambdas.Length * len).CopyTo(strip.AsSpan(len));
        endB!.CopyTo(strip, (lambdas.Length + 1) * len);
        ImageFile.Write(outPath, ImageGrid.Make(strip, lambdas.Length + 2, C, S, S, columns: lambdas.Length + 2));
        string how = ddim ? $"DDIM eta {eta.ToString(CultureInfo.InvariantCulture)}, {i + 1} of {diffusion.NumTimesteps} steps" : $"DDPM, {i + 1} steps";
        stdout.WriteLine($"mixed at t = {diffusion.TimestepMap[i]} ({mix}, {how}); wrote A | λ = {string.Join(", ", lambdas.Select(l => l.ToString(CultureInfo.InvariantCulture)))} | B to {outPath}");
        return 0;
    }

    /// <summary>x_T from the seed, sampled down to index i (the latent a full sample from that seed passes through).</summary>
    static Tensor Descend(GaussianDiffusion diffusion, DiffusionModel model, int[] shape, ulong seed, int i, bool ddim, double eta)
    {
        var rng = new Rng(seed);
        var x = Tensor.RandN(shape, rng);
        int last = diffusion.NumTimesteps - 1;
        if (i == last) return x;
        var loop = ddim ? diffusion.DdimSampleLoopProgressive(model, shape, rng, x, eta) : diffusion.PSampleLoopProgressive(model, shape, rng, x);
        // The step run at index k yields the latent at index k − 1; stop once index i is reached.
        foreach (var step in loop)
            if (step.Timestep == i + 1) return step.Sample;
        throw new InvalidOperationException("the sampling loop ended before reaching the interpolation step");
    }
}

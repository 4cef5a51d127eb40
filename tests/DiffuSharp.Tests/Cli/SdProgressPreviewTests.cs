// What a Stable Diffusion command shows while it runs and what --vae-tiling changes: plain progress lines when the
// output is not a terminal, a Spectre.Console bar on a console that is one; --preview writes the cheap latent→RGB map
// (or a VAE decode) of the last step's predicted x0, which the test recomputes from the library's preview callback;
// --vae-tiling gives the library's tiled decode.
using DiffuSharp.Cli;
using DiffuSharp.Cli.Progress;
using DiffuSharp.Imaging;
using DiffuSharp.IO;
using DiffuSharp.NN.Diffusers;
using DiffuSharp.Pipelines;
using DiffuSharp.Tests.Imaging;
using Spectre.Console;
using Xunit;
using static DiffuSharp.Tests.Cli.SdCommandsTests;

namespace DiffuSharp.Tests.Cli;

public class SdProgressPreviewTests
{
    [Fact]
    public void Redirected_output_gets_plain_progress_lines()
    {
        using var dir = new TempDir();
        var lines = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["txt2img", "--model", TinySd, "--prompt", "a cat", "--steps", "4", "--sampler", "ddim", "--out", Path.Combine(dir.Path, "o.png")],
            new StringWriter(), stderr, new ProgressOutput(Lines: lines));
        Assert.True(code == 0, stderr.ToString());
        var shown = lines.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("txt2img: step 1/4 ", shown[0]);
        Assert.Matches(@"^txt2img: step 4/4 [0-9.]+ it/s in \d+:\d\d$", shown[^1].TrimEnd('\r'));
        // no --negative: no negative prompt (diffusers' None, encoded as ""), none in the parameters
        Assert.Equal("a cat\nSteps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 0, Size: 64x64, Model: tiny_sd", Parameters(Path.Combine(dir.Path, "o.png")));
    }

    [Fact]
    public void A_terminal_gets_a_bar_with_the_steps()
    {
        using var dir = new TempDir();
        var screen = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.Yes,
            Out = new AnsiConsoleOutput(screen),
        });
        var stderr = new StringWriter();
        int code = Program.Run(["txt2img", "--model", TinySd, "--prompt", "a cat", "--steps", "3", "--sampler", "ddim", "--out", Path.Combine(dir.Path, "o.png")],
            new StringWriter(), stderr, new ProgressOutput(Console: console));
        Assert.True(code == 0, stderr.ToString());
        string shown = screen.ToString();
        Assert.Contains("txt2img: step 3/3", shown);
        Assert.DoesNotContain("step", stderr.ToString());                          // no plain lines beside the bar
    }

    [Theory, InlineData("cheap"), InlineData("vae")]
    public void The_preview_is_the_last_steps_predicted_image(string mode)
    {
        using var dir = new TempDir();
        string preview = Path.Combine(dir.Path, "preview.png");
        var (code, _, err) = Run("txt2img", "--model", TinySd, "--prompt", "a cat", "--steps", "5", "--sampler", "ddim", "--seed", "4", "--n", "2",
            "--preview", preview, "--preview-every", "2", "--preview-mode", mode, "--out", Path.Combine(dir.Path, "o.png"));
        Assert.True(code == 0, err);

        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(TinySd), "ddim");
        Tensor? last = null;
        var shown = new List<int>();
        pipe.Txt2Img(new Txt2ImgRequest("a cat", null, 7.5, 5, 64, 64, 2), new Rng(4), preview: (i, _, x0) => { shown.Add(i); last = x0; });
        var rgb = mode == "vae" ? pipe.Decode(last!) : LatentPreview.CheapRgb(last!);   // (2, 3, 64, 64) or (2, 3, 8, 8)
        int f = 64 / rgb.Dim(3);
        var x = rgb.ToArray();
        var png = Png.Read(preview);
        Assert.Equal((64 * 2 + 2 * 3, 64 + 4), (png.Width, png.Height));
        Assert.Equal("preview after step 5/5", Parameters(preview));
        int worst = 0;
        for (int b = 0; b < 2; b++)
            for (int y = 0; y < 64; y++)
                for (int xx = 0; xx < 64; xx++)
                    for (int c = 0; c < 3; c++)
                    {
                        float v = x[((b * 3 + c) * (64 / f) + y / f) * (64 / f) + xx / f];
                        int expected = (int)Math.Round(v * 255), got = png.Pixels[((2 + y) * png.Width + 2 + b * 66 + xx) * 3 + c];
                        worst = Math.Max(worst, Math.Abs(expected - got));
                    }
        Assert.True(worst <= 1, $"preview differs by {worst} levels");
    }

    [Fact]
    public void Vae_tiling_decodes_tile_by_tile()
    {
        using var dir = new TempDir();
        string tiled = Path.Combine(dir.Path, "tiled.npy"), plain = Path.Combine(dir.Path, "plain.npy");
        string[] args = ["txt2img", "--model", TinySd, "--prompt", "a cat", "--steps", "2", "--sampler", "ddim", "--width", "128", "--height", "64", "--out", Path.Combine(dir.Path, "o.png")];
        Assert.Equal(0, Run([.. args, "--vae-tiling", "--save-npy", tiled]).Code);
        Assert.Equal(0, Run([.. args, "--save-npy", plain]).Code);

        var pipe = StableDiffusionPipeline.Load(ModelIndex.Load(TinySd), "ddim");
        var result = pipe.Txt2Img(new Txt2ImgRequest("a cat", null, 7.5, 2, 128, 64), new Rng(0));
        var expected = (pipe.Vae.DecodeTiled(result.Latents / pipe.Vae.ScalingFactor, VaeTiling.For(pipe.Vae.Config)) / 2.0 + 0.5).Clamp(0, 1);
        Assert.Equal(Array.ConvertAll(expected.ToArray(), v => v * 2f - 1f), Npy.ReadFloat32(tiled).Data);
        Assert.Equal(Array.ConvertAll(result.Image.ToArray(), v => v * 2f - 1f), Npy.ReadFloat32(plain).Data);
    }
}

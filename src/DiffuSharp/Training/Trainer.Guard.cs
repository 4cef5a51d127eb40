// What a step does when its loss or gradient is not finite (see NonFinite.cs): by default it throws
// NonFiniteTrainingException naming the step, before the optimizer, the EMAs or the loss-aware sampler have seen
// anything of it; with SkipNonFinite the step is counted, its gradient dropped and the weights left as they were.
namespace DiffuSharp.Training;

public sealed partial class Trainer
{
    /// <summary>Skip steps whose loss or gradient is not finite (counted in <see cref="SkippedSteps"/>) instead of
    /// throwing <see cref="NonFiniteTrainingException"/>. Not saved in checkpoints: a per-run choice.</summary>
    public bool SkipNonFinite { get; set; }

    /// <summary>Steps skipped for a non-finite loss or gradient since this trainer was made.</summary>
    public long SkippedSteps { get; private set; }

    static bool AllFinite(float[] values)
    {
        foreach (float v in values) if (!float.IsFinite(v)) return false;
        return true;
    }

    static string LossNonFinite(float[] perSample)
        => $"the loss is {Finite.Describe(perSample.First(v => !float.IsFinite(v)))}";

    StepStats NonFiniteStep(string what, int batch, double lr, System.Diagnostics.Stopwatch clock)
    {
        Model.ZeroGrad();
        if (!SkipNonFinite)
            throw new NonFiniteTrainingException(StepCount + 1, $"step {StepCount + 1}: {what}; training stopped before this step changed anything");
        StepCount++;
        SkippedSteps++;
        return new StepStats(StepCount, double.NaN, null, null, new double[4], new int[4], lr, double.NaN, clock.Elapsed.TotalSeconds, batch);
    }

    /// <summary>Throws <see cref="NonFiniteTrainingException"/> naming the first parameter of the live weights, an EMA
    /// or the optimizer moments that holds a NaN or ±∞: what a save must never write.</summary>
    public void CheckFinite()
    {
        CheckFinite(Flat.Values, "weights");
        foreach (var ema in Emas) CheckFinite(ema.Shadow[0].ToArray(), $"EMA {ema.Rate.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}");
        var opt = Optimizer.ExportState();
        CheckFinite(opt.ExpAvg[0], "optimizer exp_avg");
        CheckFinite(opt.ExpAvgSq[0], "optimizer exp_avg_sq");
    }

    void CheckFinite(float[] flat, string what)
    {
        long i = Finite.FirstNonFinite(flat);
        if (i < 0) return;
        string name = "?";
        long at = 0;
        foreach (var (n, p) in Model.NamedParameters())
        {
            if (i < at + p.Count) { name = n; break; }
            at += p.Count;
        }
        throw new NonFiniteTrainingException(StepCount,
            $"step {StepCount}: the {what} hold {Finite.Describe(flat[i])} in '{name}'; refusing to save non-finite state (the previous save is kept)");
    }
}

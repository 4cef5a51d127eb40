// Fine-tuning from a model folder (train --init-from): the trainer's fresh weights are replaced by a folder's before
// the first step, and every EMA restarts from them (improved-diffusion's TrainLoop copies the resumed weights into
// its EMA params the same way), so the average never mixes in the random initialisation.
// A model gaining a null label (classifier-free guidance) has one label_emb row more than the folder: the class rows
// are copied and the null row is initialised to their mean. Why the mean and not zeros: the network has only ever
// seen embeddings time_emb + label_emb[c]; the mean row keeps the null label's embedding inside that range (it is
// the embedding of "the average class"), so the unconditional branch starts near the average of the conditional
// predictions, while zeros would feed an embedding offset the network has never seen.
using DiffuSharp.IO;
using DiffuSharp.Models;

namespace DiffuSharp.Training;

public sealed partial class Trainer
{
    /// <summary>
    /// Loads the weights of the model folder <paramref name="folder"/> (model.safetensors) into the model and restarts
    /// every EMA from them. Names and shapes must match, except that label_emb.weight may lack the null label's row,
    /// which is then set to the mean of the class rows. Only before the first step.
    /// </summary>
    public void InitializeFrom(string folder)
    {
        if (StepCount != 0) throw new InvalidOperationException($"init_from: the trainer is at step {StepCount}; weights can be replaced only before the first step");
        string path = Path.Combine(folder, ModelFolder.WeightsFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"init_from: weights not found: {path}", path);
        var file = SafeTensorsFile.Open(path);
        var state = new Dictionary<string, (int[] Shape, float[] Data)>();
        foreach (var name in file.Names)
            state[name] = (Array.ConvertAll(file.Info(name).Shape, d => checked((int)d)), file.ReadFloat32(name));
        if (Model.Config.NullClass && state.TryGetValue(LabelEmbName, out var emb) && emb.Shape.Length == 2 && emb.Shape[0] == Model.Config.NumClasses)
            state[LabelEmbName] = WithMeanRow(emb.Shape, emb.Data);
        Model.LoadStateDict(state, strict: true, source: path);
        foreach (var ema in Emas) ema.ImportState(new EmaState(ema.Rate, [(float[])Flat.Values.Clone()]));
    }

    const string LabelEmbName = "label_emb.weight";

    /// <summary>(K, D) rows → (K + 1, D): the rows, then their mean (accumulated in double).</summary>
    internal static (int[] Shape, float[] Data) WithMeanRow(int[] shape, float[] rows)
    {
        int k = shape[0], d = shape[1];
        var r = new float[(k + 1) * d];
        rows.AsSpan(0, k * d).CopyTo(r);
        for (int j = 0; j < d; j++)
        {
            double sum = 0;
            for (int i = 0; i < k; i++) sum += rows[i * d + j];
            r[k * d + j] = (float)(sum / k);
        }
        return ([k + 1, d], r);
    }
}

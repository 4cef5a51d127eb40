// Data-parallel training over MPI, as improved-diffusion's TrainLoop does under mpiexec (dist_util.sync_params,
// DistributedDataParallel's gradient all-reduce, LossAwareSampler.update_with_local_losses' all-gather, rank 0
// saving). With N ranks and --batch-size B, one step trains on a global batch of N·B images:
//   1. every rank draws the same global batch (the data Rng is the same everywhere) and trains on its shard
//      [rank·B, (rank+1)·B); for the other ranks' shards it only advances the label (class dropout), timestep,
//      noise (offset noise included) and dropout Rngs by what they draw, so every stream stays in step across ranks;
//   2. each rank back-propagates Σ w_i·L_i / (N·B) over its shard, one microbatch at a time (each microbatch into
//      zeroed gradients, then added to the running sum, so the sum order does not depend on the kernels);
//   3. one all-gather shares every sample's (t, loss, weight, mse, vb), each rank's gradient norm, stop request and
//      wall-time save request (so every rank takes part in the same checkpoints):
//      the log and the loss-aware sampler see the whole global batch in global order, and a non-finite loss or
//      gradient on any rank stops every rank (NonFiniteTrainingException naming the rank it came from) or, under
//      SkipNonFinite, makes every rank skip the step (no all-reduce, no update, no sampler history);
//   4. one all-reduce (sum) over the flat gradient buffer; clipping, AdamW and the EMAs then run on identical
//      numbers on every rank.
// So with N = 2 and one microbatch per rank a run equals, bit for bit, one process with batch 2B in two
// microbatches of B (the sum of two floats does not depend on its order). For N > 2 Open MPI chooses the order
// of the sum, so the weights match the single process to rounding, and are identical on every rank (checked at
// every checkpoint; rank 0's state is sent to all should they differ). Before the collectives the ranks meet at a barrier that waits sleeping. Deviations from the reference: improved-diffusion shards the data set by rank and shuffles
// each shard on its own; here the shuffle is global, which is what makes the equality above possible. The
// loss-aware sampler is updated once per step with the gathered losses (the reference gathers per microbatch);
// all ranks sample from the same weights.
using System.Buffers.Binary;
using System.Diagnostics;
using DiffuSharp.Diffusion;
using DiffuSharp.Distributed;

namespace DiffuSharp.Training;

public sealed partial class Trainer
{
    // Per-sample values of the global batch, in global order (filled by this rank for its shard, then gathered).
    double[] _recT = [], _recLoss = [], _recW = [], _recMse = [], _recVb = [];
    float[]? _gradSum;                                  // the running sum of microbatch gradients (several per step)
    int _dropoutDraws = -1;                             // dropout Rng draws per model forward, measured once
    bool _stopAgreed, _saveAgreed;                      // any rank's stop / wall-time save request, shared at the last step

    /// <summary>The MPI job this trainer is part of, or null for a single process.</summary>
    public Mpi? World { get; }

    /// <summary>True where checkpoints, logs and samples are written: rank 0, or the only process.</summary>
    public bool IsRoot => World is null || World.IsRoot;

    int Ranks => World?.Size ?? 1;
    int RankIndex => World?.Rank ?? 0;

    /// <summary>Images per step over all ranks: batch_size × N.</summary>
    public int GlobalBatchSize => Config.BatchSize * Ranks;

    /// <summary>Seconds spent in the gradient all-reduce, summed over this trainer's steps.</summary>
    public double AllreduceSeconds { get; private set; }

    /// <summary>Seconds spent waiting for the slowest rank before the collectives, summed over the steps.</summary>
    public double WaitSeconds { get; private set; }

    /// <summary>Seconds spent in the all-gather of the per-sample losses, summed over the steps.</summary>
    public double GatherSeconds { get; private set; }

    /// <summary>Steps this trainer has all-reduced (the denominators of the two sums above).</summary>
    public long SharedSteps { get; private set; }

    /// <summary>
    /// Makes every rank hold rank 0's weights, EMAs, optimizer state, RNGs, data position and sampler history
    /// (dist_util.sync_params): after building a fresh trainer and after loading a checkpoint on rank 0.
    /// </summary>
    public void SyncFromRoot()
    {
        if (World is null) return;
        World.Bcast(Flat.Values);
        foreach (var ema in Emas)
        {
            var st = ema.ExportState();
            foreach (var v in st.Values) World.Bcast(v);
            if (!World.IsRoot) ema.ImportState(st);
        }
        var opt = Optimizer.ExportState();
        Span<long> step = [opt.Step];
        World.Bcast(step);
        foreach (var v in opt.ExpAvg) World.Bcast(v);
        foreach (var v in opt.ExpAvgSq) World.Bcast(v);
        if (!World.IsRoot) Optimizer.ImportState(new AdamWState(step[0], opt.ExpAvg, opt.ExpAvgSq));
        var state = BcastBytes(World, World.IsRoot ? PackState(ExportState()) : []);
        if (!World.IsRoot) ImportState(UnpackState(state));
    }

    /// <summary>rank 0's bytes on every rank (their length first).</summary>
    public static byte[] BcastBytes(Mpi world, byte[] rootBytes)
    {
        ArgumentNullException.ThrowIfNull(world);
        Span<long> length = [rootBytes.Length];
        world.Bcast(length);
        var bytes = world.IsRoot ? rootBytes : new byte[length[0]];
        world.Bcast(bytes);
        return bytes;
    }

    // Sets up the per-step buffers (called by the constructor).
    void InitShards()
    {
        int G = GlobalBatchSize;
        (_recT, _recLoss, _recW, _recMse, _recVb) = (new double[G], new double[G], new double[G], new double[G], new double[G]);
        if (Config.MicrobatchSize < Config.BatchSize) _gradSum = new float[Flat.Grads.Length];
    }

    /// <summary>Advances the label, timestep, noise and dropout Rngs past the microbatches of ranks [from, to), as
    /// those ranks draw them in Step (same sizes, same order): the class dropout's one uniform per label, t, ε
    /// (with offset noise, its B·C offsets after the pixels) and one mask key per dropout layer.</summary>
    void SkipShards(int fromRank, int toRank)
    {
        int B = Config.BatchSize, mb = Config.MicrobatchSize, len = _c * _h * _w;
        if (toRank <= fromRank) return;
        bool labelDropout = _labels.Length > 0 && ModelConfig.NullLabel is not null;
        Span<int> scratch = labelDropout ? new int[Math.Min(mb, B)] : [];
        for (int q = fromRank; q < toRank; q++)
            for (int start = 0; start < B; start += mb)
            {
                int n = Math.Min(mb, B - start);
                if (labelDropout)                                                  // the same call, on scratch labels
                    ClassDropout.Apply(scratch[..n], ModelConfig.ClassDropoutProb, ModelConfig.NullLabel!.Value, _labelRng);
                Sampler.Sample(n, _timestepRng);                                   // t of that microbatch
                long normals = (long)n * len;                                      // ε: (n, C, H, W)
                if (ModelConfig.NoiseOffset > 0) normals += (long)n * _c;          // + offsets: (n, C, 1, 1)
                SkipNormals(_noiseRng, normals);
                for (int i = DropoutDrawsPerForward(); i > 0; i--) _dropoutRng.NextUInt64();   // one mask key per dropout layer
            }
    }

    /// <summary>Advances rng past k NextNormal() calls without computing most of them: the cached spare first, then
    /// two uniform draws per Box–Muller pair; the last pair is drawn for real, so the state (its spare, used or not)
    /// is exactly the one k calls leave.</summary>
    internal static void SkipNormals(Rng rng, long k)
    {
        if (k > 0 && rng.GetState().HasSpare) { rng.NextNormal(); k--; }
        for (; k > 2; k -= 2) { rng.NextUInt64(); rng.NextUInt64(); }
        for (; k > 0; k--) rng.NextNormal();
    }

    /// <summary>How many numbers one training forward takes from the dropout Rng, found by running it once on one
    /// image with a scratch Rng: one key per dropout layer whatever the batch size.</summary>
    int DropoutDrawsPerForward()
    {
        if (_dropoutDraws >= 0) return _dropoutDraws;
        if (!(ModelConfig.Dropout > 0)) return _dropoutDraws = 0;
        var probe = new Rng(0x6D7069UL);
        var start = probe.GetState();
        using (TensorScope.Begin())
        using (Tensor.NoGrad())
        {
            var x = Tensor.Zeros(1, _c, _h, _w);                                   // (1, C, H, W)
            int[]? classes = ModelConfig.ClassCount is null ? null : [0];
            Model.Forward(x, Tensor.FromArray([0f], 1), classes, probe);
        }
        return _dropoutDraws = CountDraws(start, probe.GetState());
    }

    static int CountDraws(RngState from, RngState to)
    {
        var r = new Rng(1);
        r.SetState(from);
        for (int n = 0; n <= 100_000; n++)
        {
            if (r.GetState() == to) return n;
            r.NextUInt64();
        }
        throw new InvalidOperationException("the model's forward takes more than 100000 numbers from the dropout Rng");
    }

    /// <summary>Microbatch k's gradients (just back-propagated into zeroed Flat.Grads) join the step's sum.</summary>
    void AccumulateMicrobatch(int k, bool last)
    {
        if (k == 0 && last) return;                                                 // one microbatch: already in place
        var g = Flat.Grads;
        var sum = _gradSum!;
        if (k == 0) g.CopyTo(sum, 0);
        else if (last) for (int i = 0; i < g.Length; i++) g[i] = sum[i] + g[i];
        else for (int i = 0; i < g.Length; i++) sum[i] += g[i];
        if (!last) Array.Clear(g);
    }

    /// <summary>Records sample i (global index) of this rank's shard.</summary>
    void Record(int i, int t, float loss, float w, float? mse, float? vb)
    {
        _recT[i] = t; _recLoss[i] = loss; _recW[i] = w;
        _recMse[i] = mse ?? double.NaN; _recVb[i] = vb ?? double.NaN;
    }

    /// <summary>Steps 3 and 4 of the header, on N > 1 ranks: gather, check, update the sampler, all-reduce. Returns
    /// what was not finite (naming the rank), the same on every rank, or null; then nothing is all-reduced and the
    /// sampler is not updated. With one process it returns <paramref name="localNonFinite"/>.</summary>
    string? ShareStep(bool stopRequested, bool saveRequested, string? localNonFinite)
    {
        if (World is null)
        {
            _saveAgreed = saveRequested;
            return localNonFinite;
        }
        int B = Config.BatchSize, N = World.Size, first = World.Rank * B, K = 5 * B + 3;
        double sq = 0;
        foreach (float g in Flat.Grads) sq += (double)g * g;
        var send = new double[K];
        _recT.AsSpan(first, B).CopyTo(send.AsSpan(0));
        _recLoss.AsSpan(first, B).CopyTo(send.AsSpan(B));
        _recW.AsSpan(first, B).CopyTo(send.AsSpan(2 * B));
        _recMse.AsSpan(first, B).CopyTo(send.AsSpan(3 * B));
        _recVb.AsSpan(first, B).CopyTo(send.AsSpan(4 * B));
        (send[5 * B], send[5 * B + 1], send[5 * B + 2]) = (sq, stopRequested ? 1 : 0, saveRequested ? 1 : 0);

        // Wait for the slowest rank sleeping (Open MPI's blocking collectives spin, taking a core from ranks still
        // computing on the same machine), then time the communication itself.
        var clock = Stopwatch.StartNew();
        World.Barrier();
        WaitSeconds += clock.Elapsed.TotalSeconds;
        clock.Restart();
        var all = new double[K * N];
        World.Allgather(send, all);
        GatherSeconds += clock.Elapsed.TotalSeconds;

        _stopAgreed = _saveAgreed = false;
        for (int q = 0; q < N; q++)
        {
            var r = all.AsSpan(q * K, K);
            r[..B].CopyTo(_recT.AsSpan(q * B));
            r.Slice(B, B).CopyTo(_recLoss.AsSpan(q * B));
            r.Slice(2 * B, B).CopyTo(_recW.AsSpan(q * B));
            r.Slice(3 * B, B).CopyTo(_recMse.AsSpan(q * B));
            r.Slice(4 * B, B).CopyTo(_recVb.AsSpan(q * B));
            _stopAgreed |= r[5 * B + 1] != 0;
            _saveAgreed |= r[5 * B + 2] != 0;
        }
        // Every rank reads the same gathered numbers, so all of them stop (or skip the step) together.
        for (int q = 0; q < N; q++)
        {
            for (int i = q * B; i < (q + 1) * B; i++)
                if (!double.IsFinite(_recLoss[i]))
                    return $"rank {q} of {N}: the loss of sample {i - q * B} is {Finite.Describe(_recLoss[i])} (t = {_recT[i]})";
            if (!double.IsFinite(all[q * K + 5 * B]))
                return $"rank {q} of {N}: the gradient is not finite";
        }
        if (Sampler is LossSecondMomentResampler aware)
            aware.UpdateWithAllLosses(_recT.Select(t => (int)t).ToArray(), _recLoss);

        clock.Restart();
        World.AllreduceSum(Flat.Grads);
        AllreduceSeconds += clock.Elapsed.TotalSeconds;
        SharedSteps++;
        return null;
    }

    /// <summary>True when training should stop before the next step: cancellation (one process) or any rank's
    /// stop request agreed at the last step (N ranks stop together).</summary>
    bool Stopping(CancellationToken cancel) => World is null ? cancel.IsCancellationRequested : _stopAgreed;

    /// <summary>Runs <paramref name="write"/> on rank 0 only; the other ranks wait for it (sleeping, not spinning).</summary>
    void AtRoot(Action write)
    {
        if (IsRoot) write();
        World?.Barrier();
    }

    /// <summary>Before a checkpoint: every rank should hold the same weights, EMAs and optimizer moments. Should they
    /// differ (machines whose SIMD widths round a reduction differently), rank 0's state is sent to all, with a warning.</summary>
    void CheckRanksAgree()
    {
        if (World is null) return;
        var opt = Optimizer.ExportState();
        ulong h = Hash(Flat.Values, 0xC0FFEE);
        foreach (var ema in Emas) h = Hash(ema.Shadow[0].Data, h);
        h = Hash(opt.ExpAvg[0], Hash(opt.ExpAvgSq[0], h));
        var all = new long[World.Size];
        World.Allgather([(long)h], all);
        int differing = all.Count(x => x != all[0]);
        if (differing == 0) return;
        if (World.IsRoot)
            Console.Error.WriteLine($"warning: at step {StepCount} the weights of {differing} of {World.Size} ranks differ from rank 0's " +
                "(ranks on machines that round differently?); every rank continues from rank 0's");
        SyncFromRoot();
    }

    static ulong Hash(ReadOnlySpan<float> values, ulong h)
    {
        foreach (float v in values) h = (h ^ BitConverter.SingleToUInt32Bits(v)) * 0x100000001B3UL;   // FNV-1a over 32-bit words
        return h;
    }

    // TrainerState as bytes for the broadcast: RNG words, data position, sampler history (little-endian).
    static byte[] PackState(TrainerState s)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms))
        {
            w.Write(s.Step);
            w.Write(s.Rngs.Count);
            foreach (var (name, r) in s.Rngs) { w.Write(name); WriteRng(w, r); }
            WriteRng(w, s.Data.EpochStart);
            w.Write(s.Data.BatchesInEpoch); w.Write(s.Data.Epoch); w.Write(s.Data.BatchSize);
            w.Write(s.Sampler is not null);
            if (s.Sampler is { } smp)
            {
                w.Write(smp.History.Length); foreach (double h in smp.History) w.Write(h);
                w.Write(smp.Counts.Length); foreach (int c in smp.Counts) w.Write(c);
            }
        }
        return ms.ToArray();
    }

    static TrainerState UnpackState(byte[] bytes)
    {
        using var r = new BinaryReader(new MemoryStream(bytes));
        long step = r.ReadInt64();
        var rngs = new Dictionary<string, RngState>();
        for (int i = r.ReadInt32(); i > 0; i--) rngs[r.ReadString()] = ReadRng(r);
        var data = new DataLoaderState(ReadRng(r), r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
        LossSecondMomentState? sampler = null;
        if (r.ReadBoolean())
        {
            var history = new double[r.ReadInt32()];
            for (int i = 0; i < history.Length; i++) history[i] = r.ReadDouble();
            var counts = new int[r.ReadInt32()];
            for (int i = 0; i < counts.Length; i++) counts[i] = r.ReadInt32();
            sampler = new LossSecondMomentState(history, counts);
        }
        return new TrainerState(step, rngs, data, sampler);
    }

    static void WriteRng(BinaryWriter w, RngState r)
    {
        w.Write(r.S0); w.Write(r.S1); w.Write(r.S2); w.Write(r.S3); w.Write(r.HasSpare); w.Write(r.Spare);
    }

    static RngState ReadRng(BinaryReader r) => new(r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64(), r.ReadBoolean(), r.ReadDouble());
}

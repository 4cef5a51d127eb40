// Load: 50 concurrent clients on a loopback port, each sending a few small sd-webui txt2img requests (a bounded loop
// that stops by itself). Every request must be answered 200 or 429, every 200 must carry its own job (no job lost or
// run twice: the runner's completed count equals the 200s, and their job ids are distinct), and the managed heap
// after the burst must be back near where it started.
using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using DiffuSharp.Server;
using Xunit;
using Xunit.Abstractions;

namespace DiffuSharp.Tests.Server;

[CollectionDefinition(nameof(ServerLoadTests), DisableParallelization = true)]
public sealed class ServerLoadCollection;

[Collection(nameof(ServerLoadTests))]
public sealed class ServerLoadTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Fifty_concurrent_clients_get_200_or_429_and_no_job_is_lost_or_duplicated()
    {
        await using var s = await ServerHarness.StartAsync(loopback: true, limits: new ServerLimits { QueueCapacity = 4, GalleryCapacity = 50 });
        const int clients = 50, requestsEach = 3;
        var body = ServerApiTests.WebuiClientBody("", steps: 2, seed: 1, sampler: "DDIM");
        // warm up (JIT, model load) so the memory baseline holds the loaded model
        await ServerApiTests.Json(await s.PostJson("/sdapi/v1/txt2img", body));
        long completedBefore = s.State.Runner.Completed;
        long before = Heap();

        var statuses = new ConcurrentBag<HttpStatusCode>();
        var jobIds = new ConcurrentBag<string>();
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = clients };
        using var http = new HttpClient(handler) { BaseAddress = new Uri(s.Address!), Timeout = TimeSpan.FromMinutes(5) };
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
        {
            for (int i = 0; i < requestsEach; i++)
            {
                var r = await System.Net.Http.Json.HttpClientJsonExtensions.PostAsJsonAsync(http, "/sdapi/v1/txt2img", body);
                statuses.Add(r.StatusCode);
                string text = await r.Content.ReadAsStringAsync();
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    var info = JsonDocument.Parse(JsonDocument.Parse(text).RootElement.GetProperty("info").GetString()!).RootElement;
                    jobIds.Add(info.GetProperty("job_id").GetString()!);
                }
                else Assert.Contains("queue is full", text);
                await Task.Delay(c % 7);
            }
        }));

        int ok = statuses.Count(x => x == HttpStatusCode.OK), busy = statuses.Count(x => x == (HttpStatusCode)429);
        long after = Heap();
        output.WriteLine($"{ok} answered 200, {busy} answered 429; managed heap {before / 1e6:F1} MB before, {after / 1e6:F1} MB after");
        Assert.Equal(clients * requestsEach, statuses.Count);
        Assert.Equal(statuses.Count, ok + busy);                                                 // nothing but 200 or 429
        Assert.True(ok >= 5, $"only {ok} requests got through");
        Assert.True(busy > 0, "the queue never filled");
        Assert.Equal(ok, jobIds.Distinct().Count());                                             // no job answered twice
        Assert.Equal(ok, s.State.Runner.Completed - completedBefore);                            // no job lost, none run twice
        Assert.Equal(0, s.State.Runner.Queued);
        Assert.Null(s.State.Runner.Current);
        Assert.True(after - before < 32_000_000, $"managed heap grew by {(after - before) / 1e6:F1} MB");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/models")).StatusCode);
    }

    static long Heap()
    {
        for (int i = 0; i < 3; i++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}

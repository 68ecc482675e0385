/**
 * Rebuild progress counts each key once, whatever the queue does with its pages (delivered twice,
 * out of order); a POST while a rebuild runs does not start it over; and a run whose pages were lost
 * (a dev server restarted) reads as failed once its lease passed, and can be started again.
 */
import { describe, expect, it } from "vitest";
import { REBUILD_LEASE_MS } from "../../src/ingest/rebuild";
import { getRebuild, startRebuild } from "../../src/storage/rebuilds";
import { call, createDataset, EVENTS_QUEUE, env, expectJson, expectProblem, runQueue } from "./helpers";
import { datasetWithKeys, REBUILD_KEYS, type RebuildStatus, rebuildKeyOf, rebuildPageMessage, rebuildStatus, waitRebuildDone } from "./rebuilds";

describe("rebuild progress", () => {
	it("counts a page delivered twice once: every key once, and the run does not fork", async () => {
		const ds = await datasetWithKeys();
		const job = crypto.randomUUID();
		await startRebuild(env.DB, { dataset: ds, job, mode: "refill", totalKeys: REBUILD_KEYS, startedAt: Date.now() });
		const first = { dataset: ds, mode: "refill", job, index: 0, after: null };
		// Queues deliver at least once: the first page comes twice (the second page is queued by the first).
		await runQueue(EVENTS_QUEUE, [rebuildPageMessage(first)]);
		await runQueue(EVENTS_QUEUE, [rebuildPageMessage(first)]);
		expect(await waitRebuildDone(ds)).toMatchObject({ keys_done: REBUILD_KEYS, pages_done: 2, total_keys: REBUILD_KEYS });
	});

	it("counts a page that arrives before the one before it was counted once, after it", async () => {
		const ds = await datasetWithKeys();
		const job = crypto.randomUUID();
		await startRebuild(env.DB, { dataset: ds, job, mode: "refill", totalKeys: REBUILD_KEYS, startedAt: Date.now() });
		await runQueue(EVENTS_QUEUE, [rebuildPageMessage({ dataset: ds, mode: "refill", job, index: 1, after: rebuildKeyOf(399) })]);
		expect(await rebuildStatus(ds)).toMatchObject({ status: "running", keys_done: 0, pages_done: 0 });
		await runQueue(EVENTS_QUEUE, [rebuildPageMessage({ dataset: ds, mode: "refill", job, index: 0, after: null })]);
		expect(await waitRebuildDone(ds)).toMatchObject({ keys_done: REBUILD_KEYS, pages_done: 2 });
	});
});

describe("POST while a rebuild is running", () => {
	it("says whether it started the run: true for a new one, false (and no GET needed) for the one running", async () => {
		const ds = await datasetWithKeys();
		const first = await expectJson<RebuildStatus>(await call("POST", `/v1/datasets/${ds}/rebuild`), 202);
		expect(first).toMatchObject({ status: "running", started: true });
		const second = await expectJson<RebuildStatus>(await call("POST", `/v1/datasets/${ds}/rebuild`), 202);
		expect(second).toMatchObject({ status: "running", started: false, started_at: first.started_at });
		// GET reports progress only: whether a request started it is not a property of the run.
		expect(await rebuildStatus(ds)).not.toHaveProperty("started");
		await waitRebuildDone(ds);
	});

	it("answers the running rebuild (202, not started over); the other mode is a 409", async () => {
		const ds = await datasetWithKeys();
		const startedAt = Date.now() - 5000;
		// A run whose pages are still queued somewhere: none is sent here, so it stays running.
		await startRebuild(env.DB, { dataset: ds, job: crypto.randomUUID(), mode: "refill", totalKeys: REBUILD_KEYS, startedAt });
		const before = await getRebuild(env.DB, ds);

		const again = await expectJson<RebuildStatus>(await call("POST", `/v1/datasets/${ds}/rebuild`), 202);
		expect(again).toMatchObject({ dataset: ds, mode: "refill", status: "running", started_at: new Date(startedAt).toISOString(), started: false });
		expect((await getRebuild(env.DB, ds))?.job).toBe(before?.job);

		const other = await expectProblem(await call("POST", `/v1/datasets/${ds}/rebuild?mode=drop`), 409);
		expect(other.detail).toMatch(/refill rebuild .* is running/);
		expect((await getRebuild(env.DB, ds))?.job).toBe(before?.job);

		// Every dataset's rebuild leaves it running too.
		const all = await expectJson<{ rebuilds: RebuildStatus[] }>(await call("POST", "/v1/rebuild"), 202);
		expect(all.rebuilds.find((r) => r.dataset === ds)).toMatchObject({ status: "running", started_at: new Date(startedAt).toISOString(), started: false });
		expect((await getRebuild(env.DB, ds))?.job).toBe(before?.job);
	});
});

/** A refill recorded as running since past its lease, as a dev server's restart leaves one: its pages went with the old process. */
const startLostRebuild = (ds: string) =>
	startRebuild(env.DB, { dataset: ds, job: crypto.randomUUID(), mode: "refill", totalKeys: REBUILD_KEYS, startedAt: Date.now() - REBUILD_LEASE_MS - 1000 });

describe("a rebuild whose pages were lost", () => {
	it("reads as failed (interrupted) once its lease passed, and starts again on POST", async () => {
		const ds = await datasetWithKeys();
		// Running, as a dev server left it when it restarted: its pages went with the old process.
		await startLostRebuild(ds);
		const lost = await rebuildStatus(ds);
		expect(lost).toMatchObject({ status: "failed", finished_at: expect.any(String), error: expect.stringMatching(/^interrupted: no progress since/) });

		const restarted = await expectJson<RebuildStatus>(await call("POST", `/v1/datasets/${ds}/rebuild`), 202);
		expect(restarted).toMatchObject({ status: "running", keys_done: 0 });
		expect(Date.parse(restarted.started_at as string)).toBeGreaterThan(Date.now() - 60_000);
		expect(await waitRebuildDone(ds)).toMatchObject({ keys_done: REBUILD_KEYS, pages_done: 2 });
	});

	it("one that is silent past its lease without a GET is started again by a POST", async () => {
		const ds = await datasetWithKeys();
		await startLostRebuild(ds);
		const restarted = await expectJson<RebuildStatus>(await call("POST", `/v1/datasets/${ds}/rebuild?mode=drop`), 202);
		expect(restarted).toMatchObject({ mode: "drop", status: "running", keys_done: 0 });
		expect(await waitRebuildDone(ds)).toMatchObject({ mode: "drop", keys_done: REBUILD_KEYS });
	});

	it("is not one whose pages wait their turn behind others: a page put off keeps its run alive", async () => {
		const names = await Promise.all([0, 1, 2].map(() => createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 })));
		const old = Date.now() - REBUILD_LEASE_MS + 60_000;
		const pages = names.map((dataset) => ({ dataset, mode: "refill" as const, job: crypto.randomUUID(), index: 0, after: null }));
		for (const p of pages) await startRebuild(env.DB, { dataset: p.dataset, job: p.job, mode: p.mode, totalKeys: 0, startedAt: old });
		// Two pages are worked per invocation; the third is put off, and says its run is alive.
		await runQueue(
			EVENTS_QUEUE,
			pages.map((p) => rebuildPageMessage(p)),
		);
		const third = await getRebuild(env.DB, names[2] as string);
		expect(third).toMatchObject({ status: "running", pagesDone: 0 });
		expect(third?.heartbeatAt).toBeGreaterThan(Date.now() - 60_000);
	});
});

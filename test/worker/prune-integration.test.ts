/**
 * Pruning the event log in steps: a step that stops at its chunk budget queues the next, so the
 * prune keeps pace with any ingest rate; a lease lets one pruner work at a time (cron runs,
 * redelivered steps), and a pruner that lost it writes nothing.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PRUNE_LEASE_MS, pruneEventLog, pruneStep } from "../../src/history/retention";
import { consumeEvents } from "../../src/ingest/consumer";
import { servicesFor } from "../../src/services";
import { isLeaseLost, leaseGuard, releaseLease, takeLease } from "../../src/storage/leases";
import { createDataset, EVENTS_QUEUE, env, eventually, message, runQueue, uniqueName } from "./helpers";

const DAY = 86_400_000;

/** `n` log entries applied three days ago, upserts of `keys` keys in time order, below every seq the log holds. */
async function oldEntries(dataset: string, n: number, keys: number): Promise<void> {
	const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
	const t0 = Date.now() - 3 * DAY;
	const rows = Array.from({ length: n }, (_, i) => [lowest - n + i, `k${i % keys}`, t0 + i, `e${i}`, JSON.stringify({ a: i })]);
	for (let i = 0; i < rows.length; i += 500) {
		await env.DB.prepare(
			`INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at)
SELECT r.value ->> 0, ?2, r.value ->> 1, r.value ->> 2, r.value ->> 3, 'upsert', r.value ->> 4, r.value ->> 2 FROM json_each(?1) AS r`,
		)
			.bind(JSON.stringify(rows.slice(i, i + 500)), dataset)
			.run();
	}
}

const logCount = async (dataset: string) =>
	(await env.DB.prepare("SELECT count(*) AS n FROM event_log WHERE dataset = ?1").bind(dataset).first<{ n: number }>())?.n ?? 0;

const lease = () => env.DB.prepare("SELECT holder, until FROM maintenance_leases WHERE name = 'event-log-prune'").first<{ holder: string; until: number }>();

describe("leases", () => {
	it("one holder at a time: taken when free or expired, handed on only by its holder, and a lost one writes nothing", async () => {
		const name = uniqueName("lease");
		const now = Date.now();
		expect(await takeLease(env.DB, name, "a", now, now + 1000)).toBe(true);
		expect(await takeLease(env.DB, name, "b", now, now + 1000)).toBe(false);
		// The next step takes it from its holder; a second delivery of that step, from the old holder, does not.
		expect(await takeLease(env.DB, name, "c", now, now + 1000, "a")).toBe(true);
		expect(await takeLease(env.DB, name, "d", now, now + 1000, "a")).toBe(false);
		// Expired: anyone takes it.
		expect(await takeLease(env.DB, name, "e", now + 1000, now + 2000)).toBe(true);
		await releaseLease(env.DB, name, "c");
		expect(await takeLease(env.DB, name, "f", now + 1000, now + 2000)).toBe(false);

		// A batch behind the guard of a holder that lost the lease is rolled back whole.
		const marker = uniqueName("marker");
		const write = env.DB.prepare("INSERT INTO maintenance_leases (name, holder, until) VALUES (?1, 'x', 0)").bind(marker);
		const lost = await env.DB.batch([...leaseGuard(env.DB, name, "c", now + 5000), write]).catch((e) => e);
		expect(isLeaseLost(lost)).toBe(true);
		expect(await env.DB.prepare("SELECT 1 AS x FROM maintenance_leases WHERE name = ?1").bind(marker).first()).toBeNull();
		// The holder's own batch commits and extends the lease.
		await env.DB.batch([...leaseGuard(env.DB, name, "e", now + 5000), write]);
		expect(await env.DB.prepare("SELECT until FROM maintenance_leases WHERE name = ?1").bind(name).first<{ until: number }>()).toEqual({ until: now + 5000 });
		await releaseLease(env.DB, name, "e");
	});
});

describe("pruning the event log in steps", () => {
	it("a step that stops at its budget goes on through the queue until the log is pruned; meanwhile no cron run or redelivered step prunes too", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600, history_days: 1 } as never);
		await oldEntries(ds, 4500, 30);
		const specs = await servicesFor(env).registry.all();

		// One chunk (2,000 entries) per step: this step stops with more to do, and keeps the lease.
		const first = await pruneStep(env.DB, env.EVENTS_QUEUE, specs, undefined, Date.now(), 1);
		expect(first).toEqual({ pruned: 2000, more: true });
		expect(await logCount(ds)).toBe(2500);
		const held = await lease();
		expect(held?.until).toBeGreaterThan(Date.now() + PRUNE_LEASE_MS / 2);
		// A cron run while the prune goes on leaves it be.
		expect(await pruneStep(env.DB, env.EVENTS_QUEUE, specs)).toBeNull();
		expect(await logCount(ds)).toBe(2500);

		// The queued next step (the queue may deliver it too), delivered twice at once: one of them prunes the rest.
		const next = JSON.stringify({ v: 1, prune: { holder: held?.holder } });
		const results = await Promise.all([runQueue(EVENTS_QUEUE, [message(next)]), runQueue(EVENTS_QUEUE, [message(next)])]);
		for (const r of results) expect(r.explicitAcks.length).toBe(1);
		await eventually(async () => ((await logCount(ds)) === 0 ? true : undefined), { what: "the log pruned" });
		await eventually(async () => ((await lease()) === null ? true : undefined), { what: "the lease released" });

		// Every key's base is its newest upsert: the entries were folded once each, in order.
		const { results: bases } = await env.DB.prepare("SELECT key, state, through_time FROM history_base WHERE dataset = ?1").bind(ds).all<{
			key: string;
			state: string;
		}>();
		expect(bases.length).toBe(30);
		for (const b of bases) {
			// Entry i is an upsert of k(i % 30) with value i: each key's newest is among the last 30.
			const newest = 4470 + Number(b.key.slice(1));
			expect((JSON.parse(b.state) as { value: unknown }).value, b.key).toEqual({ a: newest });
		}
	});

	it("a pruner whose lease was taken over writes nothing: its chunk stays in the log", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600, history_days: 1 } as never);
		await oldEntries(ds, 50, 5);
		const specs = await servicesFor(env).registry.all();
		const name = uniqueName("lost");
		const now = Date.now();
		expect(await takeLease(env.DB, name, "other", now, now + 60_000)).toBe(true);
		const lost = await pruneEventLog(env.DB, specs, now, 1, () => leaseGuard(env.DB, name, "me", now + 60_000)).catch((e) => e);
		expect(isLeaseLost(lost)).toBe(true);
		expect(await logCount(ds)).toBe(50);
		expect((await env.DB.prepare("SELECT count(*) AS n FROM history_base WHERE dataset = ?1").bind(ds).first<{ n: number }>())?.n).toBe(0);
		await releaseLease(env.DB, name, "other");
	});

	it("a prune step reaching a consumer that was given no prune runner comes back later rather than being dropped", async () => {
		const batch = createMessageBatch(EVENTS_QUEUE, [message(JSON.stringify({ v: 1, prune: { holder: "h" } }))]);
		await consumeEvents(batch, servicesFor(env));
		const result = await getQueueResult(batch, createExecutionContext());
		expect(result.explicitAcks).toEqual([]);
		expect(result.retryMessages.length).toBe(1);
	});
});

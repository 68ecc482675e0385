import { describe, expect, it } from "vitest";
import { rng } from "../../scripts/lib/rng";
import { applyEvent, type ChangeEvent, compareClocks, type RecordState } from "../../src/ingest/merge";

/** The rule the merge must equal: apply each distinct event once, in (time, id) order. Written independently of merge.ts. */
function inOrder(events: ChangeEvent[]): { value: Record<string, unknown> | null; time: number; id: string } | null {
	const distinct = [...new Map(events.map((e) => [`${e.time}|${e.id}`, e])).values()];
	distinct.sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
	let value: Record<string, unknown> | null = null;
	let last: ChangeEvent | undefined;
	for (const e of distinct) {
		if (e.op === "upsert") value = { ...e.value };
		else if (e.op === "delete") value = null;
		else value = { ...(value ?? {}), ...e.value };
		last = e;
	}
	return last ? { value, time: last.time, id: last.id } : null;
}

function randomEvents(rand: () => number, n: number): ChangeEvent[] {
	const fields = ["a", "b", "c", "d"];
	const out: ChangeEvent[] = [];
	for (let i = 0; i < n; i++) {
		const r = rand();
		const op = r < 0.4 ? "upsert" : r < 0.8 ? "patch" : "delete";
		const e: ChangeEvent = {
			// Few distinct times so ties on time are common and the id tie-break is exercised.
			id: `e${Math.floor(rand() * 1000)}`,
			dataset: "d",
			key: "k",
			op,
			time: Math.floor(rand() * 5),
		};
		if (op !== "delete") {
			const value: Record<string, unknown> = {};
			for (const f of fields) if (rand() < 0.5) value[f] = Math.floor(rand() * 100);
			// Ingest refuses empty patches, so histories never hold one.
			if (op === "patch" && Object.keys(value).length === 0) value.a = 0;
			e.value = value;
		}
		out.push(e);
	}
	return out;
}

const fold = (events: ChangeEvent[]) => events.reduce<RecordState | null>(applyEvent, null);

function shuffledWithDuplicates(rand: () => number, events: ChangeEvent[]): ChangeEvent[] {
	const list = [...events, ...events.filter(() => rand() < 0.5)];
	for (let i = list.length - 1; i > 0; i--) {
		const j = Math.floor(rand() * (i + 1));
		[list[i], list[j]] = [list[j] as ChangeEvent, list[i] as ChangeEvent];
	}
	return list;
}

describe("merge rules", () => {
	it("converge to in-order application for any order and any duplication (2,000 random histories)", () => {
		for (let seed = 1; seed <= 2000; seed++) {
			const rand = rng(seed);
			// Same id + same time must be the same event: make ids unique per (time, id) by content.
			const events = randomEvents(rand, 1 + Math.floor(rand() * 8)).map((e, i) => ({ ...e, id: `${e.id}-${i}` }));
			const expected = inOrder(events);
			const got = fold(shuffledWithDuplicates(rand, events));
			expect({ seed, value: got?.value ?? null, time: got?.clock[0], id: got?.clock[1] }).toEqual({
				seed,
				value: expected?.value ?? null,
				time: expected?.time,
				id: expected?.id,
			});
		}
	});

	it("breaks ties on time by id, the larger id winning", () => {
		const a: ChangeEvent = { id: "a", dataset: "d", key: "k", op: "upsert", value: { x: 1 }, time: 10 };
		const b: ChangeEvent = { id: "b", dataset: "d", key: "k", op: "upsert", value: { x: 2 }, time: 10 };
		expect(fold([a, b])?.value).toEqual({ x: 2 });
		expect(fold([b, a])?.value).toEqual({ x: 2 });
		expect(compareClocks([10, "b"], [10, "a"])).toBe(1);
	});

	it("keeps a tombstone so a late older upsert cannot resurrect a deleted record", () => {
		const del: ChangeEvent = { id: "d", dataset: "d", key: "k", op: "delete", time: 20 };
		const old: ChangeEvent = { id: "u", dataset: "d", key: "k", op: "upsert", value: { x: 1 }, time: 10 };
		const s = fold([del, old]);
		expect(s?.value).toBeNull();
		expect(s?.base).toEqual([20, "d"]);
	});

	it("merges patches field by field, each by its own time", () => {
		const up: ChangeEvent = { id: "1", dataset: "d", key: "k", op: "upsert", value: { a: 1, b: 1 }, time: 10 };
		const p1: ChangeEvent = { id: "2", dataset: "d", key: "k", op: "patch", value: { a: 2 }, time: 30 };
		const p2: ChangeEvent = { id: "3", dataset: "d", key: "k", op: "patch", value: { a: 3, b: 3 }, time: 20 };
		expect(fold([p1, p2, up])?.value).toEqual({ a: 2, b: 3 });
		expect(fold([up, p1, p2])?.value).toEqual({ a: 2, b: 3 });
	});

	it("returns the same state object for a redelivered event, so the consumer can skip the write", () => {
		const up: ChangeEvent = { id: "1", dataset: "d", key: "k", op: "upsert", value: { a: 1 }, time: 10 };
		const p: ChangeEvent = { id: "2", dataset: "d", key: "k", op: "patch", value: { a: 2 }, time: 11 };
		const s = fold([up, p]);
		expect(applyEvent(s, up)).toBe(s);
		expect(applyEvent(s, p)).toBe(s);
	});
});

/** Server-Timing (src/observability/timing.ts): calls in parallel count once, calls in turn add up. */
import { describe, expect, it } from "vitest";
import { ServerTiming } from "../../src/observability/timing";
import { sleep } from "./helpers";

const dur = (header: string, name: string) => Number(new RegExp(`${name};dur=([\\d.]+)`).exec(header)?.[1]);

describe("ServerTiming", () => {
	it("counts calls made at once as the time any of them ran, not the sum of their times", async () => {
		const t = new ServerTiming();
		const started = performance.now();
		await Promise.all(Array.from({ length: 8 }, () => t.measure("aggregates", () => sleep(40))));
		const wall = performance.now() - started;
		const d = dur(t.header, "aggregates");
		// Summed, 8 calls of 40 ms would say at least 320 ms.
		expect(d).toBeGreaterThanOrEqual(35);
		expect(d).toBeLessThanOrEqual(wall + 1);
	});

	it("adds up calls made one after another, keeps first-touched order, and counts a call still running up to now", async () => {
		const t = new ServerTiming();
		await t.measure("d1", () => sleep(20));
		t.add("l0", 0.5, "hit");
		await t.measure("d1", () => sleep(20));
		expect(dur(t.header, "d1")).toBeGreaterThanOrEqual(38);
		expect(t.header).toMatch(/^d1;dur=[\d.]+, l0;dur=0\.50;desc="hit"$/);
		const slow = t.measure("redis", () => sleep(50));
		await sleep(20);
		expect(dur(t.header, "redis")).toBeGreaterThanOrEqual(15);
		await slow;
	});
});

/** The circuit breaker's states, with a controlled clock. */
import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../src/serving/breaker";

describe("CircuitBreaker", () => {
	const clock = () => {
		let t = 0;
		return {
			now: () => t,
			advance: (ms: number) => {
				t += ms;
			},
		};
	};

	it("opens after `threshold` consecutive failures and lets nothing through during the cool-down", () => {
		const c = clock();
		const b = new CircuitBreaker(3, 2000, 1000, c.now);
		b.failure();
		b.failure();
		expect(b.allow()).toBe(true);
		b.failure();
		expect(b.state).toBe("open");
		c.advance(1999);
		expect(b.allow()).toBe(false);
	});

	it("half-open: after the cool-down exactly one caller gets the probe; its success closes the breaker", () => {
		const c = clock();
		const b = new CircuitBreaker(1, 2000, 1000, c.now);
		b.failure();
		c.advance(2000);
		expect(b.allow()).toBe(true);
		expect(b.state).toBe("half-open");
		expect(b.allow()).toBe(false);
		expect(b.allow()).toBe(false);
		b.success();
		expect(b.state).toBe("closed");
		expect(b.allow()).toBe(true);
	});

	it("half-open: the probe's failure opens it for another cool-down", () => {
		const c = clock();
		const b = new CircuitBreaker(1, 2000, 1000, c.now);
		b.failure();
		c.advance(2000);
		expect(b.allow()).toBe(true);
		b.failure();
		expect(b.state).toBe("open");
		c.advance(1999);
		expect(b.allow()).toBe(false);
		c.advance(1);
		expect(b.allow()).toBe(true);
	});

	it("a probe that is handed out and never reported does not leave the tier skipped for good: its lease runs out", () => {
		const c = clock();
		const b = new CircuitBreaker(1, 2000, 1000, c.now);
		b.failure();
		c.advance(2000);
		// Taken by a caller that then threw before calling the tier (e.g. the registry failed).
		expect(b.allow()).toBe(true);
		c.advance(999);
		expect(b.allow()).toBe(false);
		c.advance(1);
		expect(b.allow()).toBe(true);
		b.success();
		expect(b.state).toBe("closed");
	});
});

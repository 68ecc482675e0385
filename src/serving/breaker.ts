/**
 * A circuit breaker for a tier that can fail. After `threshold` consecutive failures it opens and
 * the tier is skipped; after `cooldownMs` one caller is let through as a probe, whose success
 * closes it again and whose failure re-opens it for another cool-down.
 */
export type BreakerState = "closed" | "open" | "half-open";

export class CircuitBreaker {
	private failures = 0;
	private openedAt = 0;
	private probing = false;
	state: BreakerState = "closed";

	constructor(
		private readonly threshold = 3,
		private readonly cooldownMs = 2000,
		private readonly now: () => number = Date.now,
	) {}

	/** Whether a call may go ahead now. In half-open state only one call (the probe) is allowed. */
	allow(): boolean {
		if (this.state === "closed") return true;
		if (this.state === "open" && this.now() - this.openedAt >= this.cooldownMs) this.state = "half-open";
		if (this.state === "half-open" && !this.probing) {
			this.probing = true;
			return true;
		}
		return false;
	}

	success(): void {
		this.failures = 0;
		this.probing = false;
		this.state = "closed";
	}

	failure(): void {
		this.probing = false;
		this.failures++;
		if (this.state === "half-open" || this.failures >= this.threshold) {
			this.state = "open";
			this.openedAt = this.now();
		}
	}

	/** Runs `fn` through the breaker, recording its outcome. Throws without calling `fn` when open. */
	async run<T>(fn: () => Promise<T>): Promise<T> {
		if (!this.allow()) throw new BreakerOpenError();
		try {
			const v = await fn();
			this.success();
			return v;
		} catch (e) {
			this.failure();
			throw e;
		}
	}
}

export class BreakerOpenError extends Error {
	override name = "BreakerOpenError";
	constructor() {
		super("circuit breaker is open");
	}
}

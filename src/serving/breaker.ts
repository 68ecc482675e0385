/**
 * A circuit breaker for a tier that can fail. After `threshold` consecutive failures it opens and
 * the tier is skipped; after `cooldownMs` one caller is let through as a probe, whose success
 * closes it again and whose failure re-opens it for another cool-down.
 *
 * The probe is a lease, not a flag: a caller that takes it and never reports (its code threw
 * before calling the tier, or its request was cancelled) would otherwise leave the breaker
 * half-open with no probe allowed, skipping the tier for the isolate's life. After `probeLeaseMs`
 * without a report, the next caller gets the probe.
 */
export type BreakerState = "closed" | "open" | "half-open";

export class CircuitBreaker {
	private failures = 0;
	private openedAt = 0;
	/** When the current probe was handed out, or null when none is out. */
	private probeSince: number | null = null;
	state: BreakerState = "closed";

	constructor(
		private readonly threshold = 3,
		private readonly cooldownMs = 2000,
		private readonly probeLeaseMs = Math.max(1000, cooldownMs),
		private readonly now: () => number = Date.now,
	) {}

	/** Whether a call may go ahead now. In half-open state only one call (the probe) is allowed at a time. */
	allow(): boolean {
		if (this.state === "closed") return true;
		const now = this.now();
		if (this.state === "open" && now - this.openedAt >= this.cooldownMs) this.state = "half-open";
		if (this.state !== "half-open") return false;
		if (this.probeSince !== null && now - this.probeSince < this.probeLeaseMs) return false;
		this.probeSince = now;
		return true;
	}

	success(): void {
		this.failures = 0;
		this.probeSince = null;
		this.state = "closed";
	}

	failure(): void {
		this.probeSince = null;
		this.failures++;
		if (this.state === "half-open" || this.failures >= this.threshold) {
			this.state = "open";
			this.openedAt = this.now();
		}
	}
}

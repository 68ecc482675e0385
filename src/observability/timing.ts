/** Collects Server-Timing entries: one per tier a request touched. */
export class ServerTiming {
	private readonly entries: string[] = [];

	/** Times `fn` and records it under `name`. */
	async measure<T>(name: string, fn: () => Promise<T>): Promise<T> {
		const start = performance.now();
		try {
			return await fn();
		} finally {
			this.add(name, performance.now() - start);
		}
	}

	add(name: string, ms: number, desc?: string): void {
		this.entries.push(`${name};dur=${ms.toFixed(2)}${desc ? `;desc="${desc}"` : ""}`);
	}

	get header(): string {
		return this.entries.join(", ");
	}
}

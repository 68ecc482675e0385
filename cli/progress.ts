/** Progress of long work on stderr: a cli-progress bar on a terminal (rows, rows/s, ETA), plain lines every few seconds otherwise. */
import cliProgress from "cli-progress";
import { count, duration } from "./output.ts";

export interface ProgressOptions {
	/** What is being done, e.g. "load items.csv". */
	label: string;
	/** The amount that makes 100% (bytes of the file, rows, keys), or undefined when unknown (stdin). */
	total?: number;
	/** What the counted things are called: "rows", "keys", "records". */
	noun?: string;
	/** Default: stderr is a terminal. */
	tty?: boolean;
	/** Plain lines: how often. */
	intervalMs?: number;
	/** Off entirely (e.g. a test that wants a quiet stderr). */
	quiet?: boolean;
	/** Where a resumed run starts (in `total`'s unit). */
	start?: number;
}

export interface ProgressState {
	/** Progress towards `total` (bytes read, rows, keys). */
	done: number;
	/** Things processed so far, for "N rows" and the rate. */
	items: number;
	/** Items done in this run, for the rate (default `items`; less when a resumed load started part-way). */
	sent?: number;
	/** Shown when > 0. */
	rejected?: number;
}

/**
 * cli-progress's time text, with "?" for an ETA it cannot tell yet: before the first chunk comes
 * back its ETA is "INF" (or NaN), which its own formatter cuts to "NFs".
 */
export function etaText(t: unknown, options: cliProgress.Options, roundTo: number): string {
	return typeof t === "number" && Number.isFinite(t) ? cliProgress.Format.TimeFormat(t, options, roundTo) : "?";
}

export class Progress {
	readonly #opts: Required<Omit<ProgressOptions, "total" | "start">> & { total?: number };
	readonly #started = Date.now();
	#bar?: cliProgress.SingleBar;
	#timer?: NodeJS.Timeout;
	#state: ProgressState = { done: 0, items: 0 };
	/** `done` at the first update: a resumed run's ETA counts from there. */
	#startDone?: number;

	constructor(opts: ProgressOptions) {
		this.#opts = { noun: "rows", tty: process.stderr.isTTY === true, intervalMs: 2000, quiet: false, ...opts };
		this.#startDone = opts.start;
		if (this.#opts.quiet) return;
		const { label, noun, total } = this.#opts;
		if (this.#opts.tty) {
			const known = total !== undefined && total > 0;
			this.#bar = new cliProgress.SingleBar(
				{
					format: known
						? `${label} {bar} {percentage}% | {items} ${noun} | {rate} ${noun}/s | ETA {eta_formatted}{rejected}`
						: `${label} {items} ${noun} | {rate} ${noun}/s | {duration_formatted}{rejected}`,
					stream: process.stderr,
					hideCursor: true,
					etaBuffer: 50,
					formatTime: etaText,
					fps: 5,
					// Drawn again even when unchanged: a note() line written over it must not leave it gone until it changes.
					forceRedraw: true,
				},
				cliProgress.Presets.shades_classic,
			);
			this.#bar.start(known ? total : 1, opts.start ?? 0, this.#payload());
		} else {
			this.#timer = setInterval(() => process.stderr.write(`${this.line()}\n`), this.#opts.intervalMs);
			this.#timer.unref();
		}
	}

	#rate(): number {
		const s = (Date.now() - this.#started) / 1000;
		return s > 0 ? (this.#state.sent ?? this.#state.items) / s : 0;
	}

	#payload() {
		return {
			items: count(this.#state.items),
			rate: count(Math.round(this.#rate())),
			rejected: this.#state.rejected ? ` | ${count(this.#state.rejected)} rejected` : "",
		};
	}

	update(state: ProgressState): void {
		this.#state = state;
		this.#startDone ??= state.done;
		this.#bar?.update(this.#opts.total ? Math.min(state.done, this.#opts.total) : 0, this.#payload());
	}

	/** One plain progress line: "load x.csv: 45.2% 452,000 rows, 8,123 rows/s, ETA 1m07s". */
	line(): string {
		const { label, noun, total } = this.#opts;
		const { done, items, rejected } = this.#state;
		const parts = [`${label}:`];
		const elapsed = Date.now() - this.#started;
		if (total) {
			const f = Math.min(1, done / total);
			parts.push(`${(f * 100).toFixed(1)}%`);
			parts.push(`${count(items)} ${noun}, ${count(Math.round(this.#rate()))} ${noun}/s`);
			const f0 = Math.min(1, (this.#startDone ?? 0) / total);
			if (f > f0 && f < 1) parts.push(`ETA ${duration((elapsed * (1 - f)) / (f - f0))}`);
		} else parts.push(`${count(items)} ${noun}, ${count(Math.round(this.#rate()))} ${noun}/s, ${duration(elapsed)}`);
		if (rejected) parts.push(`${count(rejected)} rejected`);
		return parts.join(" ");
	}

	/**
	 * A line of news while the work goes on (a rebuild waiting for Redis), written at once: on a
	 * terminal above the bar, which is drawn again under it; otherwise as a plain line.
	 */
	note(message: string): void {
		// A bar that never started (stderr no terminal after all) draws nothing: a plain line then.
		if (!this.#bar?.isActive) {
			process.stderr.write(`${message}\n`);
			return;
		}
		// Clear the bar's line; wrapping back on for the note (the bar turns it off, which would cut a
		// long error at the terminal's edge), off again for the bar, drawn again under it.
		process.stderr.write(`\r\x1b[K\x1b[?7h${message}\n\x1b[?7l`);
		this.#bar.render();
	}

	stop(): void {
		if (this.#timer) clearInterval(this.#timer);
		this.#timer = undefined;
		this.#bar?.stop();
		this.#bar = undefined;
	}
}

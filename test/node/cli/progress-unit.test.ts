// The load bar's ETA text: cli-progress gives "INF" (or NaN) until it can tell, which its own formatter cut to "NFs".
import cliProgress from "cli-progress";
import { describe, expect, it, vi } from "vitest";
import { etaText, Progress } from "../../../cli/progress.ts";

describe("the progress bar's ETA", () => {
	const options = { autopaddingChar: "0" } as cliProgress.Options;
	it("is ? while cli-progress cannot tell it yet", () => {
		expect(cliProgress.Format.TimeFormat("INF" as unknown as number, options, 5)).toBe("NFs"); // what it printed before
		for (const t of ["INF", Number.NaN, Number.POSITIVE_INFINITY, undefined]) expect(etaText(t, options, 5)).toBe("?");
	});
	it("is cli-progress's own text once it can", () => {
		expect(etaText(75, options, 5)).toBe("01m15s");
		expect(etaText(8, options, 5)).toBe("08s");
	});
});

// A rebuild waiting for Redis says so while its bar stands still: the note is a whole line above the
// bar (wrapping on, which the bar turns off: a long error was cut at the terminal's edge), the bar drawn again under it.
describe("a note while the bar runs", () => {
	it("is written whole above the bar, which is drawn again under it", () => {
		const tty = Object.getOwnPropertyDescriptor(process.stderr, "isTTY");
		const written: string[] = [];
		const write = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
			written.push(String(chunk));
			return true;
		});
		Object.defineProperty(process.stderr, "isTTY", { value: true, configurable: true });
		try {
			const progress = new Progress({ label: "rebuild (refill) items", total: 1000, noun: "keys", tty: true });
			progress.update({ done: 500, items: 500 });
			written.length = 0;
			const error = `rebuild items: page 3 failed 2 times, retrying in 4 s: ${"x".repeat(300)}`;
			progress.note(error);
			// Before stop(), which draws the bar once more anyway.
			const out = written.join("");
			progress.stop();
			expect(out).toContain(`\r\x1b[K\x1b[?7h${error}\n\x1b[?7l`);
			expect(out.slice(out.indexOf(error) + error.length)).toMatch(/rebuild \(refill\) items .*50% \| 500 keys/);
		} finally {
			write.mockRestore();
			if (tty) Object.defineProperty(process.stderr, "isTTY", tty);
			else delete (process.stderr as { isTTY?: boolean }).isTTY;
		}
	});

	it("is a plain line without a terminal", () => {
		const written: string[] = [];
		const write = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
			written.push(String(chunk));
			return true;
		});
		try {
			const progress = new Progress({ label: "rebuild (refill) items", total: 1000, tty: false });
			progress.note("rebuild items: waiting");
			progress.stop();
			expect(written).toEqual(["rebuild items: waiting\n"]);
		} finally {
			write.mockRestore();
		}
	});
});

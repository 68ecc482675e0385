// The load bar's ETA text: cli-progress gives "INF" (or NaN) until it can tell, which its own formatter cut to "NFs".
import cliProgress from "cli-progress";
import { describe, expect, it } from "vitest";
import { etaText } from "../../../cli/progress.ts";

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

// `--max-staleness` and `--fields` values the server would refuse, or read as something else than
// what was typed, are bad usage: exit 2 before any request, naming the option (CLI.md: "a missing or
// empty argument ... a bad option value").
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

// Nothing listens there: a verb that sent a request would fail with a network error (exit 1), not 2.
const nowhere = ["--url", "http://127.0.0.1:9", "--key", "k"];

describe("read option values", () => {
	it("exits 2 for a --max-staleness that is not a decimal number of seconds (0x10 was sent as 16, an empty one as no bound)", async () => {
		for (const verb of [
			["get", "users", "u1"],
			["lookup", "users", "u1"],
			["search", "users", "x"],
		]) {
			for (const value of ["0x10", "0b1", "", " ", " 5", "Infinity", "-1"]) {
				const run = await runCli([...nowhere, ...verb, "--max-staleness", value]);
				expect({ verb: verb[0], value, code: run.code }).toEqual({ verb: verb[0], value, code: 2 });
				expect(run.stderr).toContain("option '--max-staleness");
				expect(run.stderr).not.toMatch(/^\s+at /m);
			}
		}
	}, 120_000);

	it("exits 2 for a --fields that names no field (it was sent as fields= and refused with a 400, exit 1)", async () => {
		for (const verb of [
			["get", "users", "u1"],
			["lookup", "users", "u1"],
			["search", "users", "x"],
		]) {
			for (const value of ["", ",", " , "]) {
				const run = await runCli([...nowhere, ...verb, "--fields", value]);
				expect({ verb: verb[0], value, code: run.code }).toEqual({ verb: verb[0], value, code: 2 });
				expect(run.stderr).toContain("option '--fields");
			}
		}
	}, 120_000);
});

// A 400's item errors, as the CLI prints them for people: the server's detail already joins the
// items ("/a: x; /b: y"), and the CLI printed that line and then each item again, every one twice.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { uniqueName, useDevServer } from "../dev-server.ts";
import { killLeftovers, runCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-problem-items-"));
afterAll(() => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
});

const hp = (args: string[]) => runCli(["--url", server().url, "--key", server().adminKey, ...args]);
const times = (text: string, part: string) => text.split(part).length - 1;

describe("item errors of a failed request", () => {
	it("datasets apply of a bad spec names each bad field once", async () => {
		const file = path.join(dir, "bad.json");
		writeFileSync(file, JSON.stringify({ name: uniqueName("cli_bad_spec"), key: "id", ttl_seconds: -1, fields: { a: "nope", b: "int" } }));
		const run = await hp(["datasets", "apply", file]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch(/Validation failed \(400\)/);
		expect(times(run.stderr, "/fields/a: must be one of")).toBe(1);
		expect(times(run.stderr, "/ttl_seconds: ")).toBe(1);
	});

	it("search with bad filters names each once, one per line; a single one once too", async () => {
		const two = await hp(["search", "demo_users", "--filter", '{"nope": {"eq": 1}, "age": {"zz": 1}}']);
		expect(two.code).toBe(1);
		expect(times(two.stderr, '"nope" is not a filter field')).toBe(1);
		expect(times(two.stderr, 'unknown operator "zz"')).toBe(1);
		expect(two.stderr).toMatch(/^ {2}\/filter\/nope: /m);
		expect(two.stderr).toMatch(/^ {2}\/filter\/age\/zz: /m);
		const one = await hp(["search", "demo_users", "--filter", '{"nope": {"eq": 1}}']);
		expect(one.code).toBe(1);
		expect(times(one.stderr, '"nope" is not a filter field')).toBe(1);
	});
});

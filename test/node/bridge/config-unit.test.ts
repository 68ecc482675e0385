// The bridge's config: defaults, errors that name the JSON path of the bad entry, YAML, exit code 2.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "../../../cli/bridge/config.ts";
import { runToExit, scratchDir } from "./harness.ts";

const scratch = scratchDir();
afterAll(() => scratch.remove());

const nats = { type: "nats", dataset: "items", map: { key: "/id" }, servers: "127.0.0.1:4222", stream: "S", durable: "d" };
const problems = (doc: unknown, env: NodeJS.ProcessEnv = {}) => {
	try {
		parseConfig(doc, "c.json", env, []);
		return [];
	} catch (e) {
		if (!(e instanceof ConfigError)) throw e;
		return e.problems;
	}
};

describe("bridge config", () => {
	it("fills in defaults, and takes the key and URL from HOTPATH_KEY and HOTPATH_URL when the file has none", () => {
		const c = parseConfig({ sources: [nats] }, "c.json", { HOTPATH_KEY: "env-key", HOTPATH_URL: "http://h:1/" });
		expect(c.target).toEqual({ url: "http://h:1", key: "env-key", timeout_ms: 30_000 });
		expect(c.batch).toEqual({ max_events: 1000, max_wait_ms: 50, max_in_flight: 4 });
		expect(c.sources[0]).toMatchObject({ ack_wait_ms: 60_000, max_ack_pending: 20_000 });
		expect(parseConfig({ target: { key: "k" }, sources: [nats] }, "c.json", {}).target.url).toBe("http://127.0.0.1:8787");
		expect(problems({ sources: [nats] })).toEqual(["target.key: missing; put it in the config or set HOTPATH_KEY"]);
	});

	it("resolves the target as every other verb does: an empty variable is unset, the key defaults to .dev.vars, HOTPATH_URL must be http(s)", () => {
		// An empty HOTPATH_URL is unset (docs/CLI.md), not a URL the bridge retries forever as ERR_INVALID_URL.
		expect(parseConfig({ sources: [nats] }, "c.json", { HOTPATH_URL: "", HOTPATH_KEY: "k" }, []).target.url).toBe("http://127.0.0.1:8787");
		// HOTPATH_KEY unset or empty: the admin key in .dev.vars, as for every verb (DESIGN: "default: the admin key in .dev.vars").
		const dev = scratchDir();
		try {
			writeFileSync(path.join(dev.dir, ".dev.vars"), 'HOTPATH_ADMIN_KEY="dev-admin-key"\n');
			expect(parseConfig({ sources: [nats] }, "c.json", {}, [dev.dir]).target.key).toBe("dev-admin-key");
			expect(parseConfig({ sources: [nats] }, "c.json", { HOTPATH_KEY: "" }, [dev.dir]).target.key).toBe("dev-admin-key");
			expect(parseConfig({ sources: [nats] }, "c.json", { HOTPATH_KEY: "env-key" }, [dev.dir]).target.key).toBe("env-key");
			expect(parseConfig({ target: { key: "file-key" }, sources: [nats] }, "c.json", {}, [dev.dir]).target.key).toBe("file-key");
		} finally {
			dev.remove();
		}
		expect(problems({ sources: [nats] }, { HOTPATH_KEY: "" })).toEqual(["target.key: missing; put it in the config or set HOTPATH_KEY"]);
		// A HOTPATH_URL that is not http(s) is bad usage (exit 2), as for every verb, not a target retried forever.
		expect(problems({ target: { key: "k" }, sources: [nats] }, { HOTPATH_URL: "ftp://x" })).toEqual([
			'HOTPATH_URL: must be an http:// or https:// URL, not "ftp://x"',
		]);
		expect(problems({ target: { key: "k" }, sources: [nats] }, { HOTPATH_URL: "127.0.0.1:8787" })).toEqual([
			'HOTPATH_URL: must be an http:// or https:// URL, not "127.0.0.1:8787"',
		]);
		// The file's URL wins over the variable, which is then not looked at.
		expect(parseConfig({ target: { key: "k", url: "http://h:2" }, sources: [nats] }, "c.json", { HOTPATH_URL: "ftp://x" }, []).target.url).toBe("http://h:2");
	});

	it("names the JSON path of every bad entry", () => {
		expect(problems({ target: { key: "k" }, sources: [nats, { ...nats, map: { key: "id" } }] })).toEqual([
			'sources[1].map.key: must be a JSON Pointer: "" (the whole message) or "/" followed by the path, e.g. "/user/id"',
		]);
		expect(
			problems({
				target: { key: "k", url: "ftp://x" },
				batch: { max_events: 20_000 },
				sources: [{ ...nats, dataset: "Bad-Name", map: { key: "/a~2", extra: 1 }, durable: "a.b", bogus: true }, { type: "kafkaa" }],
			}),
		).toEqual([
			"target.url: must be an http(s) URL",
			expect.stringMatching(/^batch\.max_events: /),
			expect.stringMatching(/^sources\[0\]\.dataset: must be a dataset name/),
			expect.stringMatching(/^sources\[0\]\.map\.key: must be a JSON Pointer: "~" may only appear/),
			'sources[0].map: unknown setting "extra"',
			expect.stringMatching(/^sources\[0\]\.durable: /),
			'sources[0]: unknown setting "bogus"',
			expect.stringMatching(/^sources\[1\]\.type: /),
		]);
		expect(
			problems({
				target: { key: "k" },
				sources: [
					{ ...nats, name: "a" },
					{ ...nats, name: "a" },
				],
			}),
		).toEqual(['sources[1].name: "a" is also the name of sources[0]']);
		expect(
			problems({
				target: { key: "k" },
				sources: [{ type: "postgres", url: "postgres://x", tables: ["a", { table: "b", dataset: "bb" }], slot: "s", publication: "p" }],
			}),
		).toEqual(["sources[0].tables[0]: names no dataset, and the source has no default dataset"]);
		expect(problems({ target: { key: "k" }, sources: [] })).toEqual(["sources: needs at least one source"]);
		expect(problems([1, 2])).toEqual(["(top level): the config must be a JSON object with target and sources"]);
	});

	it("a source URL with the wrong scheme, or none, is a config error naming its path (not a failure at start)", async () => {
		const common = { dataset: "items", map: { key: "/id" } };
		expect(
			problems({
				target: { key: "k" },
				sources: [
					{ ...common, type: "redis-streams", url: "not a url", stream: "s", group: "g", consumer: "c" },
					{ ...common, type: "amqp", url: "http://127.0.0.1:5672", queue: "q" },
					{ ...common, type: "mqtt", url: "http://127.0.0.1:1883", topic: "t/#", client_id: "c" },
					{ type: "postgres", dataset: "items", url: "127.0.0.1:5432", tables: ["t"], slot: "s", publication: "p" },
				],
			}),
		).toEqual([
			'sources[0].url: must be a URL starting with redis:// or rediss://, e.g. "redis://127.0.0.1:6379/0"',
			'sources[1].url: must be a URL starting with amqp:// or amqps://, e.g. "amqp://guest:guest@127.0.0.1:5672", not http:',
			expect.stringMatching(/^sources\[2\]\.url: must be a URL starting with mqtt:\/\/, .*, e\.g\. "mqtt:\/\/127\.0\.0\.1:1883", not http:$/),
			expect.stringMatching(/^sources\[3\]\.url: must be a URL starting with postgres:\/\/, postgresql:\/\/ or socket:\/\//),
		]);
		// What the client libraries take stays accepted: other schemes they know, Unix sockets, any case.
		expect(
			problems({
				target: { key: "k" },
				sources: [
					{ ...common, type: "redis-streams", url: "REDISS://h:6380", stream: "s", group: "g", consumer: "c" },
					{ ...common, type: "redis-streams", name: "sock", url: "/tmp/redis.sock", stream: "s", group: "g", consumer: "c" },
					{ ...common, type: "mqtt", url: "wss://h/mqtt", topic: "t/#", client_id: "c" },
					{ type: "postgres", dataset: "items", url: "postgresql://u:p@h/db", tables: ["t"], slot: "s", publication: "p" },
				],
			}),
		).toEqual([]);
		const run = await runToExit(
			{ target: { key: "k" }, sources: [{ ...common, type: "redis-streams", url: "not a url", stream: "s", group: "g", consumer: "c" }] },
			scratch.dir,
		);
		expect(run.code).toBe(2);
		expect(run.output).toContain("sources[0].url: must be a URL starting with redis:// or rediss://");
	}, 30_000);

	it("a redis-streams start that is not an entry id or $ is a config error naming its path", () => {
		const redis = { type: "redis-streams", dataset: "items", map: { key: "/id" }, url: "redis://h", stream: "s", group: "g", consumer: "c" };
		expect(problems({ target: { key: "k" }, sources: [{ ...redis, start: "latest" }] })).toEqual([
			'sources[0].start: must be "$" (new entries only) or an entry id ("0" for the whole stream, MS or MS-SEQ)',
		]);
		for (const start of ["$", "0", "0-0", "1795834953104", "1795834953104-7"]) {
			expect(problems({ target: { key: "k" }, sources: [{ ...redis, start }] })).toEqual([]);
		}
	});

	it("reads YAML as well as JSON", () => {
		const file = path.join(scratch.dir, "bridge.yaml");
		writeFileSync(
			file,
			"target:\n  url: http://127.0.0.1:9999\n  key: k\nsources:\n  - type: redis-streams\n    dataset: users\n    map: {key: /user_id}\n    url: redis://127.0.0.1:6379\n    stream: s\n    group: g\n    consumer: c\n",
		);
		expect(loadConfig(file, {}).sources[0]).toMatchObject({ type: "redis-streams", stream: "s", start: "0", count: 1000 });
	});

	it("reads a JSON config that starts with a byte-order mark", () => {
		const file = path.join(scratch.dir, "bridge-bom.json");
		const config = {
			target: { url: "http://127.0.0.1:9999", key: "k" },
			sources: [{ type: "redis-streams", dataset: "users", map: { key: "/user_id" }, url: "redis://127.0.0.1:6379", stream: "s", group: "g", consumer: "c" }],
		};
		writeFileSync(file, `\uFEFF${JSON.stringify(config)}\r\n`);
		expect(loadConfig(file, {}).sources[0]).toMatchObject({ type: "redis-streams", stream: "s" });
	});

	it("a bad config or bad usage exits 2 with the path of the bad entry; --help exits 0", async () => {
		const bad = await runToExit({ target: { key: "k" }, sources: [nats, { ...nats, map: { key: "id" } }] }, scratch.dir);
		expect(bad.code).toBe(2);
		expect(bad.output).toContain("sources[1].map.key: must be a JSON Pointer");
		const notJson = await runToExit("{", scratch.dir);
		expect(notJson.code).toBe(2);
		expect(notJson.output).toContain("not valid JSON");
		const usage = await runToExit({ target: { key: "k" }, sources: [nats] }, scratch.dir, ["--status-port", "x"]);
		expect(usage.code).toBe(2);
		expect(usage.output).toContain("--status-port must be PORT or HOST:PORT");
		const help = await runToExit({}, scratch.dir, ["--help"]);
		expect(help.code).toBe(0);
		expect(help.output).toContain("usage: hotpath bridge --config FILE");
	}, 30_000);

	it("is the `bridge` verb of the hotpath CLI", async () => {
		const bad = await runToExit({ target: { key: "k" }, sources: [{ ...nats, map: {} }] }, scratch.dir, [], { via: "cli" });
		expect(bad.code).toBe(2);
		expect(bad.output).toContain("sources[0].map.key: ");
	}, 30_000);
});

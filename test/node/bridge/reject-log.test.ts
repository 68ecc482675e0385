// The reject log: a path that cannot be written is a clear error at start, never a crash (an unhandled
// 'error' event) at the first rejected message.
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { RejectLog } from "../../../cli/bridge/rejects.ts";
import { readNdjson, runToExit, testTarget } from "./harness.ts";
import { REDIS_URL, redisStreamsFixture } from "./redis-fixture.ts";

const fx = redisStreamsFixture();

describe("reject log", () => {
	it("a path that is a directory: open and write fail (the caller leaves the messages unacked); nothing is thrown at the process", async () => {
		const dir = path.join(fx.scratch.dir, "a-directory");
		mkdirSync(dir);
		const log = new RejectLog(dir, "s");
		await expect(log.write([{ id: "x:1", error: "bad", by: "bridge", raw: "?" }])).rejects.toThrow(/EISDIR/);
		await expect(log.open()).rejects.toThrow(/EISDIR/);
		await expect(log.check()).rejects.toThrow(/EISDIR/);
		// A path that does not exist yet passes the check without being created.
		const fresh = new RejectLog(path.join(fx.scratch.dir, "later", "r.ndjson"), "s");
		await fresh.check();
		expect(existsSync(fresh.file)).toBe(false);
		// A good path still works after a failure, and writes what it is given.
		const ok = new RejectLog(path.join(fx.scratch.dir, "sub", "ok.ndjson"), "s");
		await ok.write([{ id: "x:2", error: "bad", by: "bridge", raw: "?" }]);
		await ok.close();
		expect(readNdjson(ok.file)).toMatchObject([{ id: "x:2", source: "s", error: "bad" }]);
	});

	it("the bridge with an unwritable reject_log stops at start with a clear error, before it pulls anything", async () => {
		const stream = fx.newStream("rejectlog:");
		await fx.redis.xadd(stream, "*", "json", "not json");
		await fx.redis.xadd(stream, "*", "json", JSON.stringify({ user_id: "u1", country: "DE" }));
		await fx.redis.xgroup("CREATE", stream, "hotpath", "0");
		const dir = path.join(fx.scratch.dir, "rejects-dir");
		mkdirSync(dir);
		const config = {
			...testTarget(fx.fake.url, fx.fake.key),
			sources: [
				{
					type: "redis-streams",
					name: "profiles",
					dataset: "users",
					map: { key: "/user_id" },
					url: REDIS_URL,
					stream,
					group: "hotpath",
					consumer: "c1",
					reject_log: dir,
				},
			],
		};
		const { code, output } = await runToExit(config, fx.scratch.dir, ["--status-interval", "0"], { timeoutMs: 20_000 });
		expect(output).not.toMatch(/Unhandled 'error' event/);
		expect(output).toMatch(/profiles: reject_log .*rejects-dir cannot be written: EISDIR/);
		expect(code).toBe(1);
		// Nothing was read from the stream, so nothing waits in the group's pending list.
		expect(await fx.redis.xpending(stream, "hotpath")).toEqual([0, null, null, null]);
	});
});

describe("a source that cannot start", () => {
	it("the fatal error names the source and its type, not only the client library's words", async () => {
		const config = {
			...testTarget(fx.fake.url, fx.fake.key),
			sources: [
				{
					type: "redis-streams",
					name: "profiles",
					dataset: "users",
					map: { key: "/user_id" },
					url: "redis://127.0.0.1:1",
					stream: "s",
					group: "g",
					consumer: "c",
					reject_log: path.join(fx.scratch.dir, "unused.ndjson"),
				},
			],
		};
		const { code, output } = await runToExit(config, fx.scratch.dir, ["--status-interval", "0"], { timeoutMs: 20_000 });
		expect(code).toBe(1);
		expect(output).toMatch(/fatal: profiles \(redis-streams\) could not start: /);
	});
});

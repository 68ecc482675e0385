// `hotpath rebuild` watching a run: a page retried while Redis is down keeps the run `running` with
// the failure in `error`, which the CLI never showed (the bar just stood still); a POST answering a
// rebuild already running was reported as if started; and a 409 (the other mode running) spoke HTTP.
// A stand-in server plays the rebuild routes, so each status the CLI sees is scripted.
import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import type { RebuildStatus as Status } from "../../../packages/client/src/types.ts";
import { json, runCli } from "./run-cli.ts";

const T0 = "2026-11-28T06:00:00.000Z";
const idle: Status = { dataset: "items", mode: "refill", status: "idle", keys_done: 0, pages_done: 0, total_keys: 0, started_at: null, finished_at: null };
const running = (over: Partial<Status> = {}): Status => ({ ...idle, status: "running", total_keys: 1000, started_at: T0, ...over });

let server: Server | undefined;
afterEach(async () => {
	const s = server;
	server = undefined;
	if (!s) return;
	s.closeAllConnections();
	await new Promise((r) => s.close(r));
});

type Answer = { status?: number; body: unknown };

/**
 * A stand-in answering each "METHOD path" from its script: the next answer of the list each time,
 * the last one again once the list is used up.
 */
async function standIn(script: Record<string, Answer[]>): Promise<string> {
	const served = new Map<string, number>();
	server = createServer((req, res) => {
		const route = `${req.method} ${(req.url ?? "").split("?")[0]}`;
		const answers = script[route];
		if (!answers?.length) {
			res.writeHead(404, { "content-type": "application/problem+json" }).end(JSON.stringify({ title: "Not Found", status: 404, detail: route }));
			return;
		}
		const n = served.get(route) ?? 0;
		served.set(route, n + 1);
		const answer = answers[Math.min(n, answers.length - 1)] as Answer;
		const status = answer.status ?? 200;
		res.writeHead(status, { "content-type": status >= 400 ? "application/problem+json" : "application/json" }).end(JSON.stringify(answer.body));
	});
	await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
	const address = server.address();
	return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
}

const hp = (url: string, args: string[]) => runCli(["--url", url, "--key", "hp_test", "rebuild", "--interval", "0.05", ...args]);
const times = (text: string, part: string) => text.split(part).length - 1;

const redisDown = "page 0 failed 1 time since 2026-11-28T06:00:01.000Z, retrying in 2 s: Error: connect ECONNREFUSED 127.0.0.1:6379";
const redisStillDown = "page 0 failed 2 times since 2026-11-28T06:00:01.000Z, retrying in 4 s: Error: connect ECONNREFUSED 127.0.0.1:6379";

describe("a running rebuild's error", () => {
	it("is said once when it appears and once per change (plain output), and when the page goes through", async () => {
		const url = await standIn({
			"POST /v1/datasets/items/rebuild": [{ status: 202, body: running({ started: true }) }],
			"GET /v1/datasets/items/rebuild": [
				...Array(4).fill({ body: running({ error: redisDown }) }),
				...Array(4).fill({ body: running({ error: redisStillDown }) }),
				{ body: running({ keys_done: 500, pages_done: 1 }) },
				{ body: { ...running({ keys_done: 1000, pages_done: 2 }), status: "done", finished_at: "2026-11-28T06:01:00.000Z" } },
			],
		});
		const run = await hp(url, ["items", "--json"]);
		expect(run.code).toBe(0);
		expect(times(run.stderr, `rebuild items: ${redisDown}\n`)).toBe(1);
		expect(times(run.stderr, `rebuild items: ${redisStillDown}\n`)).toBe(1);
		expect(times(run.stderr, "rebuild items: the failing page went through; going on\n")).toBe(1);
		expect(run.stderr.indexOf(redisDown)).toBeLessThan(run.stderr.indexOf(redisStillDown));
		expect(json(run)).toMatchObject({ status: "done", keys_done: 1000 });
		expect(run.stderr).not.toMatch(/joined/);
	}, 30_000);

	it("is in the --json result of a run still waiting at --timeout (exit 1), and of a failed run (exit 1, in the table too)", async () => {
		const waiting = await standIn({
			"POST /v1/datasets/items/rebuild": [{ status: 202, body: running({ started: true }) }],
			"GET /v1/datasets/items/rebuild": [{ body: running({ error: redisDown }) }],
		});
		const timedOut = await hp(waiting, ["items", "--json", "--timeout", "0.5"]);
		expect(timedOut.code).toBe(1);
		expect(json(timedOut)).toMatchObject({ status: "running", error: redisDown });
		expect(times(timedOut.stderr, redisDown)).toBe(1);

		const gaveUp = "page 0 failed 40 times since 2026-11-28T06:00:01.000Z (last: Error: connect ECONNREFUSED); POST the rebuild again once the tier is back";
		const failing = await standIn({
			"POST /v1/datasets/items/rebuild": [{ status: 202, body: running({ started: true }) }],
			"GET /v1/datasets/items/rebuild": [
				{ body: running({ error: redisDown }) },
				{ body: { ...running({ error: gaveUp }), status: "failed", finished_at: "2026-11-28T06:31:00.000Z" } },
			],
		});
		const failed = await hp(failing, ["items"]);
		expect(failed.code).toBe(1);
		expect(failed.stdout).toMatch(/^items\s+refill\s+failed\s.*page 0 failed 40 times/m);
		expect(failed.stderr).not.toMatch(/went through/);
	}, 30_000);
});

describe("a rebuild already running", () => {
	it("is joined and waited for, and said to be joined rather than started", async () => {
		const url = await standIn({
			"POST /v1/datasets/items/rebuild": [{ status: 202, body: running({ keys_done: 300, pages_done: 3, started: false }) }],
			"GET /v1/datasets/items/rebuild": [
				{ body: running({ keys_done: 600, pages_done: 6 }) },
				{ body: { ...running({ keys_done: 1000, pages_done: 10 }), status: "done", finished_at: "2026-11-28T06:02:00.000Z" } },
			],
		});
		const run = await hp(url, ["items", "--json"]);
		expect(run.code).toBe(0);
		expect(run.stderr).toMatch(`rebuild items: joined the refill rebuild running since ${T0} (300 of 1,000 keys done) rather than start one`);
		expect(json(run)).toMatchObject({ status: "done", keys_done: 1000 });
	}, 30_000);

	it("is said to be joined when the server says so, though a status read just before showed another run", async () => {
		// Another client's run started between a status read and the POST: only the POST's answer can tell.
		const earlier = running({ started_at: "2026-11-28T05:00:00.000Z", keys_done: 999 });
		const url = await standIn({
			"POST /v1/datasets/items/rebuild": [{ status: 202, body: running({ keys_done: 10, pages_done: 1, started: false }) }],
			"GET /v1/datasets/items/rebuild": [
				{ body: earlier },
				{ body: { ...running({ keys_done: 1000, pages_done: 10 }), status: "done", finished_at: "2026-11-28T06:02:00.000Z" } },
			],
		});
		const run = await hp(url, ["items", "--json"]);
		expect(run.code).toBe(0);
		expect(run.stderr).toMatch(`rebuild items: joined the refill rebuild running since ${T0} (10 of 1,000 keys done) rather than start one`);
		expect(json(run)).toMatchObject({ status: "done", keys_done: 1000, started_at: T0 });
	}, 30_000);

	it("of the other mode: a 409 is a clear message naming the running mode and how to wait for it, exit 1", async () => {
		const url = await standIn({
			"POST /v1/datasets/items/rebuild": [
				{
					status: 409,
					body: {
						title: "Conflict",
						status: 409,
						detail: 'a drop rebuild of "items" is running (100 of 1000 keys done); wait until GET /v1/datasets/items/rebuild says done or failed',
					},
				},
			],
			"GET /v1/datasets/items/rebuild": [{ body: running({ mode: "drop", keys_done: 100 }) }],
		});
		const run = await hp(url, ["items"]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch(`a drop rebuild of items is running (100 of 1,000 keys done, since ${T0}); a refill cannot start until it ends`);
		expect(run.stderr).toMatch("wait for it with `hotpath rebuild items --mode drop`, then run this again");
		const asJson = await hp(url, ["items", "--json"]);
		expect(asJson.code).toBe(1);
		expect(json(asJson)).toMatchObject({ error: { status: 409 } });
	}, 30_000);

	it("--all: a dataset whose run of the other mode is running is joined, said so, and the exit is 1", async () => {
		const usersDrop = running({ dataset: "users", mode: "drop", keys_done: 10, total_keys: 20 });
		const url = await standIn({
			"POST /v1/rebuild": [{ status: 202, body: { rebuilds: [running({ started: true }), { ...usersDrop, started: false }] } }],
			"GET /v1/datasets/items/rebuild": [{ body: { ...running({ keys_done: 1000 }), status: "done", finished_at: T0 } }],
			"GET /v1/datasets/users/rebuild": [{ body: { ...usersDrop, keys_done: 20, status: "done", finished_at: T0 } }],
		});
		const run = await hp(url, ["--all"]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch("rebuild users: a drop rebuild is running (10 of 20 keys done); no refill was started");
		expect(run.stderr).toMatch(/not refilled \(a rebuild of the other mode was running\): users$/m);
		expect(run.stderr).not.toMatch(/rebuild items: (joined|a drop)/);
	}, 30_000);
});

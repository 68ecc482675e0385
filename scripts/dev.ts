// `npm run dev`: local Hotpath in one command. Applies D1 migrations, makes sure .dev.vars holds an
// admin key, brings up the hot tier (REDIS_URL, else a private redis-server, else off), starts
// `wrangler dev`, and seeds a small demo dataset once the worker answers.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";
import { seedDemo } from "./lib/demo-data.ts";
import { adminKeyOf } from "./lib/dev-vars.ts";
import { type RedisServerHandle, redisServerAvailable, startRedisServer } from "./lib/redis-server.ts";
import { spawnUpstashLocal, type UpstashProcess } from "./lib/upstash-process.ts";

const root = path.join(import.meta.dirname, "..");
const wranglerBin = path.join(root, "node_modules", ".bin", "wrangler");
const log = (msg: string) => console.log(`[hotpath] ${msg}`);

const { values, positionals } = parseArgs({
	options: { port: { type: "string", default: "8787" }, "no-seed": { type: "boolean", default: false }, "persist-to": { type: "string" } },
	allowPositionals: true,
	strict: false,
});
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
	console.error(`--port must be a TCP port, got "${values.port}"`);
	process.exit(2);
}
const persistArgs = typeof values["persist-to"] === "string" ? ["--persist-to", values["persist-to"]] : [];

/** The admin key from .dev.vars, written with a random one when absent. */
function ensureAdminKey(): string {
	const file = path.join(root, ".dev.vars");
	const text = existsSync(file) ? readFileSync(file, "utf8") : "";
	const found = adminKeyOf(text);
	if (found) return found;
	const key = `hp_admin_${randomBytes(18).toString("base64url")}`;
	writeFileSync(file, `${text}${text && !text.endsWith("\n") ? "\n" : ""}HOTPATH_ADMIN_KEY="${key}"\n`);
	log(`wrote a new random HOTPATH_ADMIN_KEY to .dev.vars`);
	return key;
}

function applyMigrations(): void {
	log("applying D1 migrations to the local database");
	const r = spawnSync(wranglerBin, ["d1", "migrations", "apply", "DB", "--local", ...persistArgs], {
		cwd: root,
		stdio: ["ignore", "inherit", "inherit"],
		env: { ...process.env, CI: "true" },
	});
	if (r.status !== 0) throw new Error(`wrangler d1 migrations apply failed (exit ${r.status})`);
}

async function startHotTier(): Promise<{ redis?: RedisServerHandle; upstash?: UpstashProcess; note: string }> {
	let redisUrl = process.env.REDIS_URL;
	let redis: RedisServerHandle | undefined;
	if (!redisUrl) {
		if (!redisServerAvailable()) return { note: "off: no REDIS_URL and no redis-server on PATH (install redis-server to turn it on)" };
		redis = await startRedisServer();
		redisUrl = redis.url;
	}
	const upstash = await spawnUpstashLocal({ redisUrl, token: randomBytes(16).toString("hex") });
	return { redis, upstash, note: `on: ${redis ? "private redis-server" : "REDIS_URL"} ${redisUrl} via the local Upstash endpoint ${upstash.url}` };
}

async function waitForWorker(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
	const end = Date.now() + timeoutMs;
	while (Date.now() < end) {
		if (child.exitCode !== null) throw new Error(`wrangler dev exited with code ${child.exitCode}`);
		try {
			if ((await fetch(`${url}/ping`)).ok) return;
		} catch {
			// not listening yet
		}
		await new Promise((r) => setTimeout(r, 250));
	}
	throw new Error(`the worker did not answer on ${url} within ${timeoutMs / 1000} s`);
}

/**
 * Whether 127.0.0.1:`port` is free. When it is not (a dev server left running elsewhere), wrangler
 * cannot listen there, and the worker that answers on it is that other one: seeding it, or printing
 * it as ready, would point at a server that is not this one.
 */
function portFree(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const probe = createServer();
		probe.once("error", () => resolve(false));
		probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
	});
}

async function main(): Promise<void> {
	if (!(await portFree(port))) {
		throw new Error(`port ${port} on 127.0.0.1 is in use (another npm run dev?): stop what listens there, or pass another port: npm run dev -- --port N`);
	}
	const adminKey = ensureAdminKey();
	applyMigrations();
	const hot = await startHotTier();
	log(`hot tier (Redis) ${hot.note}`);

	const vars = hot.upstash ? ["--var", `UPSTASH_REDIS_REST_URL:${hot.upstash.url}`, "--var", `UPSTASH_REDIS_REST_TOKEN:${hot.upstash.token}`] : [];
	const wrangler = spawn(
		wranglerBin,
		["dev", "--port", String(port), "--ip", "127.0.0.1", "--show-interactive-dev-session=false", ...persistArgs, ...vars, ...positionals],
		{
			cwd: root,
			stdio: ["ignore", "inherit", "inherit"],
		},
	);
	let stopping = false;
	const stop = async (code: number) => {
		if (stopping) return;
		stopping = true;
		wrangler.kill("SIGTERM");
		await hot.upstash?.stop();
		await hot.redis?.stop();
		process.exit(code);
	};
	process.once("SIGINT", () => void stop(0));
	process.once("SIGTERM", () => void stop(0));
	wrangler.once("exit", (code) => void stop(code ?? 1));

	const url = `http://127.0.0.1:${port}`;
	await waitForWorker(url, wrangler);
	if (!values["no-seed"]) await seedDemo(url, adminKey, log);
	log(`ready at ${url}`);
	log(`admin key (from .dev.vars): ${adminKey}`);
	log(`try: curl -H "Authorization: Bearer ${adminKey}" ${url}/v1/datasets/demo_users/records/u1`);
	log(`     npx hotpath search demo_users travel --highlight${port === 8787 ? "" : ` --url ${url}`}`);
}

main().catch((e: unknown) => {
	console.error(`[hotpath] ${e instanceof Error ? e.message : String(e)}`);
	process.exit(1);
});

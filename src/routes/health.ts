/**
 * GET /healthz: whether each tier answers. No auth, so load balancers can use it; so one probe of
 * the backends is reused for HEALTH_CACHE_MS, and unauthenticated callers cannot make every
 * backend work on every call.
 */

import * as z from "zod";
import { waitWhile } from "../control/wait";
import type { Services } from "../services";
import { timeout } from "../timeout";
import { json, keylessProblems, mount, newRouter } from "./openapi";

type TierState = "up" | "down" | "off";

export interface Health {
	status: "ok" | "degraded" | "down";
	tiers: Record<"l0" | "redis" | "kv" | "d1", TierState>;
}

const up = async (p: Promise<unknown> | undefined, ms: number): Promise<TierState> => {
	try {
		await timeout(Promise.resolve(p), ms, "health probe");
		return "up";
	} catch {
		return "down";
	}
};

/** Asks every backend once. */
export async function probeHealth(services: Services): Promise<Health> {
	const { env, redis } = services;
	const [d1, kv, redisUp] = await Promise.all([
		up(env.DB.prepare("SELECT 1").first(), 2000),
		up(env.RECORDS_KV.get("healthz:probe"), 2000),
		// Goes through the breaker: an open breaker reads as down, and after its cool-down this ping is the probe that closes it.
		redis?.probe(),
	]);
	const tiers: Health["tiers"] = { l0: "up", redis: redis ? (redisUp ? "up" : "down") : "off", kv, d1 };
	const status = d1 === "down" ? "down" : Object.values(tiers).includes("down") ? "degraded" : "ok";
	return { status, tiers };
}

// The last probe, per isolate. A request that finds one in flight does not await it (workerd forbids
// awaiting another request's I/O): it answers from the previous one, or probes itself if there is none.
let last: { at: number; health: Health } | null = null;
let probing = false;
let probeStartedAt = 0;
/**
 * Whether a probe is under way. One in flight past its longest time is taken as lost (workerd
 * cancels a request it finds hung, and the probe's cleanup never runs): otherwise every later call
 * would answer its predecessor's health for as long as the isolate lives.
 */
const inFlight = (now: number) => probing && now - probeStartedAt < PROBE_WAIT_MS;
/** A probe's longest time (its backends' 2 s timeouts) and a bit. */
const PROBE_WAIT_MS = 2500;

export const healthRoutes = newRouter();

const tierState = z.enum(["up", "down", "off"]);
const HealthSchema = z
	.object({ status: z.enum(["ok", "degraded", "down"]), tiers: z.object({ l0: tierState, redis: tierState, kv: tierState, d1: tierState }) })
	.openapi("Health");

mount(
	healthRoutes,
	{
		method: "get",
		path: "/",
		summary: "Whether each tier answers (no auth)",
		description: "One probe of the backends is reused for HEALTH_CACHE_MS (2 s). 503 when D1 is down.",
		tags: ["health"],
		responses: { ...keylessProblems(), 200: json("Up or degraded", HealthSchema), 503: json("D1 is down", HealthSchema) },
	},
	async (c) => {
		const services = c.get("services");
		const now = Date.now();
		let health: Health;
		// A cold isolate's first calls, arriving together: one probes, the others wait for its answer on a
		// timer (never on its promise) for as long as a probe can take, rather than each probe every backend.
		const waiting = () => !last && inFlight(now);
		if (waiting()) await waitWhile(waiting, PROBE_WAIT_MS);
		if (last && (now - last.at < services.settings.HEALTH_CACHE_MS || inFlight(now))) health = last.health;
		else {
			probing = true;
			probeStartedAt = now;
			try {
				health = await probeHealth(services);
				last = { at: Date.now(), health };
			} finally {
				probing = false;
			}
		}
		c.header("cache-control", "no-store");
		return c.json(health, health.status === "down" ? 503 : 200);
	},
);

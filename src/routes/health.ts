/** GET /healthz: whether each tier answers. No auth, so load balancers can use it. */
import { Hono } from "hono";
import type { AppEnv } from "../env";

type TierState = "up" | "down" | "off";

const probe = async (fn: () => Promise<unknown>, ms: number): Promise<TierState> => {
	let timer: ReturnType<typeof setTimeout> | undefined;
	try {
		await Promise.race([fn(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("timeout")), ms)))]);
		return "up";
	} catch {
		return "down";
	} finally {
		if (timer !== undefined) clearTimeout(timer);
	}
};

export const healthRoutes = new Hono<AppEnv>();

healthRoutes.get("/", async (c) => {
	const { env, redis } = c.get("services");
	const [d1, kv, redisUp] = await Promise.all([
		probe(() => env.DB.prepare("SELECT 1").first(), 2000),
		probe(() => env.RECORDS_KV.get("healthz:probe"), 2000),
		// Goes through the breaker: an open breaker reads as down, and after its cool-down this ping is the probe that closes it.
		redis?.probe(),
	]);
	const tiers: Record<"l0" | "redis" | "kv" | "d1", TierState> = { l0: "up", redis: redis ? (redisUp ? "up" : "down") : "off", kv, d1 };
	const status = d1 === "down" ? "down" : Object.values(tiers).includes("down") ? "degraded" : "ok";
	c.header("cache-control", "no-store");
	return c.json({ status, tiers }, d1 === "down" ? 503 : 200);
});

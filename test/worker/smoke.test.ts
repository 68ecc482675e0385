import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";

it("answers healthz", async () => {
	const res = await exports.default.fetch("http://x/healthz");
	expect(res.status).toBe(200);
	expect(await res.json()).toEqual({ status: "ok", tiers: { l0: "up", redis: "up", kv: "up", d1: "up" } });
});

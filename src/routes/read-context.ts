/** Bridges a Hono context to the read path's needs: Server-Timing and waitUntil for background fills. */
import type { Context } from "hono";
import { ServerTiming } from "../observability/timing";
import type { ReadContext } from "../serving/reader";

export function readContext(c: Context): ReadContext {
	let ctx: { waitUntil(p: Promise<unknown>): void } | undefined;
	try {
		ctx = c.executionCtx;
	} catch {
		// app.request() in tests has no execution context; background work then runs detached.
	}
	return {
		timing: new ServerTiming(),
		waitUntil: (p) => (ctx ? ctx.waitUntil(p) : void p.catch(() => {})),
	};
}

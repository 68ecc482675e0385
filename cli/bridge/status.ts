/** The bridge's status: GET /metrics (JSON, or Prometheus text) on --status-port, and a one-line summary for stderr. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { SourceStats } from "./pipeline.ts";

export interface StatusSnapshot {
	uptime_s: number;
	/** The bridge process: CPU time used since it started (process.cpuUsage) and resident memory. */
	process: { cpu_user_ms: number; cpu_system_ms: number; rss_mb: number };
	target: { url: string; failing: boolean; retries: number };
	sources: Record<string, SourceStats & { type: string }>;
}

const COUNTERS = ["received", "sent", "acked", "rejected"] as const;

/** Prometheus text exposition of the same figures. */
export function prometheusText(s: StatusSnapshot): string {
	const lines: string[] = [];
	const label = (name: string) => `source="${name.replace(/["\\]/g, "\\$&")}"`;
	for (const c of COUNTERS) {
		lines.push(`# TYPE hotpath_bridge_${c}_total counter`);
		for (const [name, st] of Object.entries(s.sources)) lines.push(`hotpath_bridge_${c}_total{${label(name)}} ${st[c]}`);
	}
	lines.push("# TYPE hotpath_bridge_pending gauge");
	for (const [name, st] of Object.entries(s.sources)) lines.push(`hotpath_bridge_pending{${label(name)}} ${st.pending}`);
	lines.push("# TYPE hotpath_bridge_lag gauge");
	for (const [name, st] of Object.entries(s.sources)) if (st.lag !== null) lines.push(`hotpath_bridge_lag{${label(name)}} ${st.lag}`);
	lines.push("# TYPE hotpath_bridge_target_retries_total counter", `hotpath_bridge_target_retries_total ${s.target.retries}`);
	lines.push("# TYPE hotpath_bridge_target_failing gauge", `hotpath_bridge_target_failing ${s.target.failing ? 1 : 0}`);
	lines.push("# TYPE process_cpu_seconds_total counter", `process_cpu_seconds_total ${(s.process.cpu_user_ms + s.process.cpu_system_ms) / 1000}`);
	lines.push("# TYPE process_resident_memory_bytes gauge", `process_resident_memory_bytes ${Math.round(s.process.rss_mb * 1024 * 1024)}`);
	return `${lines.join("\n")}\n`;
}

/** `nats-0 recv 10 sent 9 acked 10 rej 1 pend 0 lag 0 | … | hotpath ok` */
export function statusLine(s: StatusSnapshot): string {
	const parts = Object.entries(s.sources).map(
		([name, st]) => `${name} recv ${st.received} sent ${st.sent} acked ${st.acked} rej ${st.rejected} pend ${st.pending} lag ${st.lag ?? "?"}`,
	);
	parts.push(`hotpath ${s.target.failing ? "FAILING (retrying)" : "ok"}`);
	return parts.join(" | ");
}

/** Serves GET /metrics on host:port; resolves with the bound port (0 picks a free one). */
export async function startStatusServer(host: string, port: number, snapshot: () => StatusSnapshot): Promise<{ port: number; close: () => Promise<void> }> {
	const server: Server = createServer((req, res) => {
		// A request target no URL can be made of (`GET http://[x`) is the client's error, never a crash of the bridge.
		const url = URL.parse(req.url ?? "/", "http://localhost");
		if (!url) {
			res.writeHead(400, { "content-type": "text/plain" }).end("bad request target; GET /metrics\n");
			return;
		}
		if (req.method !== "GET" || url.pathname !== "/metrics") {
			res.writeHead(404, { "content-type": "text/plain" }).end("GET /metrics\n");
			return;
		}
		const s = snapshot();
		const prometheus = url.searchParams.get("format") === "prometheus" || /text\/plain|openmetrics/.test(req.headers.accept ?? "");
		if (prometheus) res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(prometheusText(s));
		else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(s));
	});
	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(port, host, () => resolve());
	});
	server.unref();
	return {
		port: (server.address() as AddressInfo).port,
		close: () => new Promise<void>((resolve) => server.close(() => resolve())),
	};
}

// GET /metrics on --status-port: a malformed request gets a 4xx and the bridge goes on.
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { type StatusSnapshot, startStatusServer } from "../../../cli/bridge/status.ts";

const snapshot = (): StatusSnapshot => ({
	uptime_s: 1,
	process: { cpu_user_ms: 1, cpu_system_ms: 1, rss_mb: 1 },
	target: { url: "http://hp", failing: false, retries: 0 },
	sources: { s: { type: "nats", received: 1, sent: 1, acked: 1, rejected: 0, pending: 0, lag: 0 } },
});

/** Sends raw bytes and resolves with the first line of the answer ("" when the connection just closed). */
function raw(port: number, request: string): Promise<string> {
	return new Promise((resolve, reject) => {
		const socket = connect(port, "127.0.0.1", () => socket.write(request));
		let data = "";
		socket.on("data", (d) => {
			data += d.toString();
			socket.end();
		});
		socket.on("close", () => resolve(data.split("\r\n")[0] ?? ""));
		socket.on("error", reject);
	});
}

describe("status server", () => {
	it("a request target that is not a URL (GET http://[x) is a 400, and /metrics still answers afterwards", async () => {
		const server = await startStatusServer("127.0.0.1", 0, snapshot);
		try {
			expect(await raw(server.port, "GET http://[x HTTP/1.1\r\nHost: a\r\n\r\n")).toBe("HTTP/1.1 400 Bad Request");
			const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
			expect(res.status).toBe(200);
			expect(((await res.json()) as StatusSnapshot).sources.s?.acked).toBe(1);
		} finally {
			await server.close();
		}
	});
});

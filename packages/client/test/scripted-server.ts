// A tiny local HTTP server for the client's tests: each test scripts its answers, and the server
// records every request. Closed after each test.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterEach } from "vitest";

export interface Seen {
	method: string;
	url: string;
	headers: IncomingMessage["headers"];
	body: string;
	/** When the request's body had arrived (epoch ms). */
	at: number;
	req: IncomingMessage;
}

export type Script = (req: Seen, n: number, res: ServerResponse) => void;

let server: Server | undefined;

/** Starts a server that hands the n-th request (0-based) to `script`, and records every request. */
export async function scripted(script: Script): Promise<{ url: string; seen: Seen[] }> {
	const seen: Seen[] = [];
	const s = createServer((req, res) => {
		let body = "";
		req.on("data", (c: Buffer) => (body += c.toString()));
		req.on("end", () => {
			const r = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, at: Date.now(), req };
			seen.push(r);
			script(r, seen.length - 1, res);
		});
	});
	server = s;
	await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
	const address = s.address();
	return { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, seen };
}

afterEach(async () => {
	server?.closeAllConnections();
	await new Promise((r) => server?.close(r));
	server = undefined;
});

// The part of autocannon's programmatic API the load process uses (the package ships no types).
declare module "autocannon" {
	namespace autocannon {
		interface Request {
			method?: string;
			path?: string;
			headers?: Record<string, string>;
			body?: string | Buffer;
			setupRequest?: (req: Request, context: Record<string, unknown>) => Request | null | undefined;
			onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string | string[]>) => void;
		}
		interface Options {
			url: string;
			connections?: number;
			pipelining?: number;
			timeout?: number;
			duration?: number;
			amount?: number;
			/** Milliseconds between samples; a run with `amount` ends at the first tick after its last answer. */
			sampleInt?: number;
			overallRate?: number;
			requests?: Request[];
		}
		interface Histogram {
			average: number;
			p50: number;
			p99: number;
			total: number;
		}
		interface Result {
			requests: Histogram;
			latency: Histogram;
			errors: number;
			timeouts: number;
			non2xx: number;
			duration: number;
		}
		interface Instance {
			stop(): void;
			on(event: "response", listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this;
		}
	}
	function autocannon(opts: autocannon.Options, cb: (err: Error | null, result: autocannon.Result) => void): autocannon.Instance;
	export default autocannon;
}

/** Bounds how long a caller waits on I/O (a tier, D1): the call itself is not cancelled, only no longer awaited. */
export class WaitTimeoutError extends Error {
	override name = "WaitTimeoutError";
}

export const timeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
	new Promise<T>((resolve, reject) => {
		const t = setTimeout(() => reject(new WaitTimeoutError(`${what} timed out after ${ms} ms`)), ms);
		p.then(
			(v) => {
				clearTimeout(t);
				resolve(v);
			},
			(e) => {
				clearTimeout(t);
				reject(e);
			},
		);
	});

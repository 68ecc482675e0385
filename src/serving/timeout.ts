/** Bounds how long the read path waits on a tier. The call itself is not cancelled, only no longer awaited. */
export class TierTimeoutError extends Error {
	override name = "TierTimeoutError";
}

export const timeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
	new Promise<T>((resolve, reject) => {
		const t = setTimeout(() => reject(new TierTimeoutError(`${what} timed out after ${ms} ms`)), ms);
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

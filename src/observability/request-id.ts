/**
 * Request ids: a random prefix per isolate plus a counter. Unique across isolates without a
 * crypto.randomUUID() per request. The prefix is made on first use because Workers refuse
 * random values at global scope.
 */
let prefix = "";
let seq = 0;

export function nextRequestId(): string {
	if (!prefix) prefix = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
	seq++;
	return `${prefix}-${seq.toString(36)}`;
}

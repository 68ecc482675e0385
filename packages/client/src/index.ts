/** @hotpath/client: the TypeScript SDK for Hotpath's HTTP API. No dependencies beyond fetch; Node 18+, Workers and browsers. */
export { Hotpath, type HotpathOptions } from "./client.js";
export { CLIENT_PROBLEM, HotpathError, type Problem, type ProblemItem } from "./errors.js";
export type { FetchLike, RetryNotice } from "./transport.js";
export type * from "./types.js";

export const VERSION = "0.1.0";

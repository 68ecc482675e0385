#!/usr/bin/env node
// The `hotpath` CLI (placeholder until the verbs land).
console.error("hotpath: no verbs yet");
process.exit(2);

CREATE TABLE `idempotency_receipts` (
	`scope` text PRIMARY KEY NOT NULL,
	`received_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `idempotency_receipts_received_at` ON `idempotency_receipts` (`received_at`);
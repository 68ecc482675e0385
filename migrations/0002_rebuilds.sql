CREATE TABLE `rebuilds` (
	`dataset` text PRIMARY KEY NOT NULL,
	`job` text NOT NULL,
	`mode` text NOT NULL,
	`status` text NOT NULL,
	`keys_done` integer DEFAULT 0 NOT NULL,
	`pages_done` integer DEFAULT 0 NOT NULL,
	`total_keys` integer NOT NULL,
	`started_at` integer NOT NULL,
	`finished_at` integer,
	`error` text
);

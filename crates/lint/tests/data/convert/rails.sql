-- Rails 7 (`rails db:migrate` with `disable_ddl_transaction!` for the index), as the log shows it.
ALTER TABLE "users" ADD "plan" character varying DEFAULT 'free' NOT NULL;
ALTER TABLE "users" ADD "last_seen_at" timestamp(6);
DROP INDEX CONCURRENTLY IF EXISTS "index_users_on_last_seen_at";
CREATE INDEX CONCURRENTLY "index_users_on_last_seen_at" ON "users" ("last_seen_at");
ALTER TABLE "users" ADD CONSTRAINT "fk_rails_0a1b2c3d4e" FOREIGN KEY ("account_id") REFERENCES "accounts" ("id") NOT VALID;
ALTER TABLE "users" VALIDATE CONSTRAINT "fk_rails_0a1b2c3d4e";
CREATE UNIQUE INDEX CONCURRENTLY "index_users_on_email" ON "users" ("email");
ALTER TABLE "users" RENAME COLUMN "name" TO "full_name";

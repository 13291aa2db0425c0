BEGIN;
--
-- Add field score to profile
--
ALTER TABLE "app_profile" ADD COLUMN "score" integer DEFAULT 0 NOT NULL;
ALTER TABLE "app_profile" ALTER COLUMN "score" DROP DEFAULT;
--
-- Add field team to profile
--
ALTER TABLE "app_profile" ADD COLUMN "team_id" bigint NULL CONSTRAINT "app_profile_team_id_3d5f_fk_app_team_id" REFERENCES "app_team"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "app_profile_team_id_3d5f_fk_app_team_id" IMMEDIATE;
CREATE INDEX "app_profile_team_id_3d5f" ON "app_profile" ("team_id");
--
-- Alter field bio on profile
--
ALTER TABLE "app_profile" ALTER COLUMN "bio" TYPE text USING "bio"::text;
--
-- Alter field nickname on profile
--
UPDATE "app_profile" SET "nickname" = '' WHERE "nickname" IS NULL; ALTER TABLE "app_profile" ALTER COLUMN "nickname" SET NOT NULL;
COMMIT;

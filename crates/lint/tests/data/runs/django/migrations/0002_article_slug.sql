BEGIN;
--
-- Add field slug to article
--
ALTER TABLE "blog_article" ADD COLUMN "slug" varchar(50) NULL;
--
-- Alter field title on article
--
ALTER TABLE "blog_article" ALTER COLUMN "title" TYPE varchar(255);
CREATE INDEX "blog_article_slug_3c1a4b_idx" ON "blog_article" ("slug");
COMMIT;

--
-- Concurrently add index blog_article_body_idx on field(s) body of model article
--
CREATE INDEX CONCURRENTLY "blog_article_body_idx" ON "blog_article" ("body");

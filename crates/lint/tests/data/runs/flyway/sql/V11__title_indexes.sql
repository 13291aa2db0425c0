CREATE INDEX CONCURRENTLY products_title_idx ON products (title);
CREATE INDEX CONCURRENTLY products_title_lower_idx ON products (lower(title));

-- add_index :comments, :post_id, algorithm: :concurrently without disable_ddl_transaction!
CREATE INDEX CONCURRENTLY index_comments_on_post_id ON comments (post_id);

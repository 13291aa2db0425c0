SET lock_timeout = '2s';

-- CreateIndex
CREATE INDEX CONCURRENTLY "User_name_idx" ON "User"("name");

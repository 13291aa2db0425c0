CREATE TABLE "User" ("id" SERIAL NOT NULL, "email" TEXT NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "authorId" INTEGER NOT NULL,
    "body" TEXT,
    "views" INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);
INSERT INTO "User" ("email") SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO "Post" ("authorId", "body", "views") SELECT 1 + g % 50, 'post ' || g, g FROM generate_series(1, 400) g;

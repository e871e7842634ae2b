-- Demo schema for pgturnout: the same data in two schema versions.
-- Run as user app in database app (scripts/demo.sh; docker/compose.yml runs
-- it through the postgres image's docker-entrypoint-initdb.d).
--   v1 (path old, search_path public):          public.users(id, name, email)
--   v2 (path new, search_path app_v2, public):  app_v2.users_v2(id, full_name, email)
-- pgturnout's [rewrite] table.users = users_v2 / column.users.name = full_name
-- maps one to the other.

CREATE SCHEMA IF NOT EXISTS app_v2;

CREATE TABLE public.users (
	id serial PRIMARY KEY,
	name text NOT NULL,
	email text
);

INSERT INTO public.users (name, email) VALUES
	('Ada Lovelace', 'ada@example.com'),
	('Alan Turing', 'alan@example.com'),
	('Grace Hopper', 'grace@example.com'),
	('Edsger Dijkstra', 'edsger@example.com');

CREATE TABLE app_v2.users_v2 (
	id integer PRIMARY KEY,
	full_name text NOT NULL,
	email text
);

-- backfill: the new table starts as a copy of the old one
INSERT INTO app_v2.users_v2 (id, full_name, email)
	SELECT id, name, email FROM public.users;

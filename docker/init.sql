-- Demo schema for pgturnout: the same data in two schema versions.
-- Run as user app in database app (scripts/demo.sh; docker/compose.yml runs
-- it through the postgres image's docker-entrypoint-initdb.d).
--   v1 (path old, search_path public):          public.users(id, name, email, nickname)
--   v2 (path new, search_path app_v2, public):  app_v2.users_v2(id, full_name, email, email_domain)
-- pgturnout's [rewrite] table.users = users_v2 / column.users.name = full_name
-- maps one to the other; email_domain (new only) is computed from email by an
-- up expression, nickname (old only) from full_name by a down expression.

CREATE SCHEMA IF NOT EXISTS app_v2;

CREATE TABLE public.users (
	id serial PRIMARY KEY,
	name text NOT NULL,
	email text,
	nickname text
);

INSERT INTO public.users (name, email, nickname) VALUES
	('Ada Lovelace', 'ada@example.com', 'Ada'),
	('Alan Turing', 'alan@cam.example.org', 'Alan'),
	('Grace Hopper', 'grace@navy.example.mil', 'Grace'),
	('Edsger Dijkstra', 'edsger@example.com', 'Edsger');

CREATE TABLE app_v2.users_v2 (
	id integer PRIMARY KEY,
	full_name text NOT NULL,
	email text,
	email_domain text
);

-- backfill: the new table starts as a copy of the old one, through the
-- rename and the up expression
INSERT INTO app_v2.users_v2 (id, full_name, email, email_domain)
	SELECT id, name, email, split_part(email, '@', 2) FROM public.users;

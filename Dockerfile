# The streamgate image: `deno task start` on the official Deno image, as its unprivileged `deno`
# user. One image for every role: ROLE (gateway | worker | all) and the other settings come from
# the environment (docs/configuration.md). compose.yaml builds it.
FROM denoland/deno:2.9.6

WORKDIR /app
# /data holds the lake on local disk (and, in embedded mode, the WAL and dead letters), or with a
# lake on S3 (LAKE_URL=s3://…) only the cache of data files queries and jobs read. A named volume
# mounted there starts with this ownership.
RUN mkdir -p /data/lake /data/wal /data/dead_letter /data/cache && chown -R deno:deno /app /data
USER deno

# Dependencies first, so that a code change does not download them again.
COPY --chown=deno:deno deno.json deno.lock ./
RUN deno install --frozen
COPY --chown=deno:deno . .
# Cache the entry point and the DuckDB worker (loaded at run time) so a container starts offline.
RUN deno cache main.ts lake/engine/duckdb_worker.ts

ENV PORT=8080 \
    HOSTNAME=0.0.0.0 \
    LAKE_DIR=/data/lake \
    LAKE_CACHE_DIR=/data/cache \
    WAL_DIR=/data/wal \
    DEAD_LETTER_DIR=/data/dead_letter
EXPOSE 8080
# No curl in the image: Deno itself asks for /health.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
  CMD ["deno", "eval", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT')}/health`); Deno.exit(r.ok ? 0 : 1)"]
CMD ["deno", "task", "start"]
